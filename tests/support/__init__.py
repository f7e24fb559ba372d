"""Test support, loaded by tests/conftest.py through `pytest_plugins`: ports, server processes, database servers.

- ports.py: the one free-port helper (scripts/svc_common.py's) and free loopback addresses for a cluster.
- harness.py: the one way to run a server process (own session, log file, wait until it answers, bounded stop)
  and the one skip-or-fail rule (`server_unavailable`).
- servers.py: session fixtures for the real Cassandra node, Redis and the 3-node Cassandra cluster.
"""
