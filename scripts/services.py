"""Start, stop and inspect the real local database servers (Cassandra 5.0, Redis, a Cassandra cluster).

Usage:  python scripts/services.py start|stop|status [cassandra] [redis]
        python scripts/services.py fetch      (only download the Cassandra jars, e.g. to warm a CI cache)
        python scripts/services.py cluster start|stop|status|url
        python scripts/services.py cluster kill N | start-node N
        python scripts/services.py cluster nodetool N ARGS...   (the real nodetool against node N)

The servers themselves live in svc_cassandra.py (one node from the Maven Central jars, or the
official image), svc_redis.py (Debian's redis-server) and svc_cluster.py (three nodes on
127.0.1.1-3); svc_common.py has what they share. Each runs in the background in its own session,
with a pid file, and its data under .cache/services/ (the cluster: .cache/cluster/).

Environment (all optional):
  CASSANDRA_HOST (127.0.0.1), CASSANDRA_PORT (9042, native CQL), CASSANDRA_STORAGE_PORT (7000,
  internode), CASSANDRA_JMX_PORT (7199), CASSANDRA_DIR (.cache/services/cassandra),
  CASSANDRA_LIB (.cache/cassandra/lib), CASSANDRA_VERSION (the pom's), CASSANDRA_HEAP (768M),
  CASSANDRA_START_TIMEOUT (240 s), CASSANDRA_KEYSPACE (mnist, only for the printed URL),
  CASSANDRA_DOCKER (0); REDIS_HOST (127.0.0.1), REDIS_PORT (6379), REDIS_DB (0),
  REDIS_DIR (.cache/services/redis), REDIS_START_TIMEOUT (30 s); the cluster's CLUSTER_* settings
  are in svc_cluster.py.
"""

import argparse
import logging
import os
import sys
import time

from svc_cassandra import DEFAULT_LIB, CassandraServer, DockerCassandraServer, ensure_cassandra_jars
from svc_cluster import CassandraCluster
from svc_common import ServiceError, docker_available
from svc_redis import RedisServer

log = logging.getLogger("services")


def make_server(name):
    """The server object for a service name, configured from the environment."""
    if name == "cassandra":
        if os.environ.get("CASSANDRA_DOCKER") == "1" and docker_available():
            return DockerCassandraServer()
        return CassandraServer()
    if name == "redis":
        return RedisServer()
    raise ValueError(f"unknown service {name!r}: use cassandra or redis")


def single(action, names):
    """start|stop|status of the single-node servers; the exit status."""
    status = 0
    for name in names:
        server = make_server(name)
        try:
            if action == "start":
                started = time.monotonic()
                server.start()
                log.info("%s up in %.1f s", name, time.monotonic() - started)
                print(server.url)
            elif action == "stop":
                print(f"{name}: {'stopped' if server.stop() else 'not running'}")
            else:
                running = server.is_running()
                print(f"{name}: {'running' if running else 'stopped'} {server.url}")
                status |= 0 if running else 3
        except ServiceError as exc:
            log.error("%s: %s", name, exc)
            status = 1
    return status


def cluster(action, node, extra=()):
    """start|stop|status|url|kill|start-node|nodetool of the local cluster; the exit status."""
    nodes = CassandraCluster()
    if action in ("kill", "start-node", "nodetool") and node is None:
        raise ServiceError(f"cluster {action} needs a node number (1..{len(nodes.nodes)})")
    if action == "start":
        log.info("cluster took %.1f s to start", nodes.start())
        print("\n".join(nodes.status()))
        print(nodes.url)
    elif action == "start-node":
        nodes.start_node(node)
        print("\n".join(nodes.status()))
    elif action == "kill":
        print(f"node {node}: {'killed (SIGKILL)' if nodes.kill_node(node) else 'not running'}")
    elif action == "stop":
        print(f"cluster: {nodes.stop()} node(s) stopped")
    elif action == "url":
        print(nodes.url)
    elif action == "nodetool":
        print(nodes.nodetool(node, *extra, timeout=3600), end="")
    else:
        print("\n".join(nodes.status()))
        print(nodes.url)
        return 0 if nodes.all_up() else 3
    return 0


def main(argv=None):
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status", "fetch", "cluster"])
    parser.add_argument(
        "args", nargs=argparse.REMAINDER, help="services (cassandra, redis; default both), or the cluster action"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)  # driver noise while polling a starting node
    try:
        if args.action == "fetch":
            print(
                ensure_cassandra_jars(
                    os.environ.get("CASSANDRA_LIB") or DEFAULT_LIB, os.environ.get("CASSANDRA_VERSION")
                )
            )
            return 0
        if args.action == "cluster":
            actions = ("start", "stop", "status", "url", "kill", "start-node", "nodetool")
            if not args.args or args.args[0] not in actions or (len(args.args) > 2 and args.args[0] != "nodetool"):
                parser.error(
                    f"cluster needs one of {', '.join(actions)} (and a node number for kill/start-node/nodetool)"
                )
            node = int(args.args[1]) if len(args.args) > 1 else None
            return cluster(args.args[0], node, args.args[2:])
        unknown = set(args.args) - {"cassandra", "redis"}
        if unknown:
            parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
        return single(args.action, args.args or ["cassandra", "redis"])
    except ServiceError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
