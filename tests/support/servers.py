"""Session fixtures for the real database servers the storage tests run against.

Each fixture starts its own server on free loopback ports under a temporary directory (via
scripts/svc_*.py), or reuses a running one named by MNIST_TEST_CASSANDRA_URL / MNIST_TEST_REDIS_URL /
MNIST_TEST_CLUSTER_URL. A server that cannot start fails the run when CI=true and skips its tests
otherwise (harness.server_unavailable). tests/conftest.py loads this module with `pytest_plugins`.
"""

import logging
import os
import uuid
from urllib.parse import urlsplit

import pytest

from svc_cassandra import CassandraServer, cql_ready
from svc_cluster import CassandraCluster
from svc_common import ServiceError
from svc_redis import RedisServer

from .harness import server_unavailable
from .ports import free_loopback_hosts, free_port, free_port_run

log = logging.getLogger(__name__)


class ExternalServer:
    """A server someone else runs, named by a URL; tests cannot stop or restart it."""

    restartable = False

    def __init__(self, url):
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (9042 if parts.scheme == "cassandra" else 6379)
        self.url = url

    def is_running(self):
        """Assumed to run; the tests' first query says otherwise."""
        return True


@pytest.fixture(scope="session")
def cassandra_server(tmp_path_factory):
    """A real Cassandra node for the session: started on free ports, or MNIST_TEST_CASSANDRA_URL."""
    url = os.environ.get("MNIST_TEST_CASSANDRA_URL")
    if url:
        server = ExternalServer(url)
        if not cql_ready(server.host, server.port):
            server_unavailable(f"MNIST_TEST_CASSANDRA_URL={url} does not answer CQL")
        yield server
        return
    server = _own_cassandra(tmp_path_factory)
    yield server
    server.stop()


def _own_cassandra(tmp_path_factory):
    server = CassandraServer(
        base_dir=tmp_path_factory.mktemp("cassandra"),
        port=free_port(),
        storage_port=free_port(),
        jmx_port=free_port(),
        heap=os.environ.get("CASSANDRA_HEAP", "512M"),
        unsafe_system=True,  # test data need not survive a power cut; schema changes get much faster
    )
    server.restartable = True
    try:
        seconds = server.start(wait=False).wait_ready(float(os.environ.get("CASSANDRA_START_TIMEOUT", 240)))
    except (ServiceError, OSError) as exc:
        server.stop(timeout=10)
        server_unavailable(f"could not start Cassandra: {exc}")
    log.info("test cassandra up on %s after %.1f s", server.url, seconds)
    server.start_seconds = seconds
    return server


@pytest.fixture(scope="session")
def restartable_cassandra(cassandra_server, tmp_path_factory):
    """A Cassandra node tests may stop and start: the session's own one, or a private one."""
    if getattr(cassandra_server, "restartable", False):
        yield cassandra_server
        if not cassandra_server.is_running():  # leave it up for whoever uses cassandra_server next
            cassandra_server.start()
        return
    server = _own_cassandra(tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server for the session: started on a free port, or MNIST_TEST_REDIS_URL."""
    url = os.environ.get("MNIST_TEST_REDIS_URL")
    if url:
        import redis

        try:
            redis.Redis.from_url(url, socket_timeout=5).ping()
        except redis.RedisError as exc:
            server_unavailable(f"MNIST_TEST_REDIS_URL={url} does not answer: {exc}")
        yield ExternalServer(url)
        return
    server = RedisServer(base_dir=tmp_path_factory.mktemp("redis"), port=free_port())
    try:
        server.start(timeout=30)
    except (ServiceError, OSError) as exc:
        server.stop(timeout=5)
        server_unavailable(f"could not start redis-server: {exc}")
    server.restartable = True
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cassandra_cluster(tmp_path_factory):
    """A real 3-node Cassandra cluster the tests may kill nodes of: MNIST_TEST_CLUSTER_URL's, or its own.

    With MNIST_TEST_CLUSTER_URL (`make test` sets it), the cluster is the one scripts/services.py
    started with the same CLUSTER_* environment, so its pid files let the tests kill and restart
    nodes. Otherwise three nodes start on free loopback addresses under a temporary folder.
    """
    url = os.environ.get("MNIST_TEST_CLUSTER_URL")
    if url:
        cluster = CassandraCluster()
        if urlsplit(url).netloc.rsplit(":", 1)[0].split(",") != cluster.hosts:
            server_unavailable(f"MNIST_TEST_CLUSTER_URL={url} is not the cluster CLUSTER_HOSTS names ({cluster.hosts})")
        if not all(node.is_running() for node in cluster.nodes):
            server_unavailable(f"MNIST_TEST_CLUSTER_URL={url}: not every node runs (CLUSTER_DIR={cluster.base_dir})")
        yield cluster
        for n, node in enumerate(cluster.nodes, start=1):  # leave it as found for `make test` to stop
            if not node.is_running():
                cluster.start_node(n)
        return
    cluster = None
    try:
        cluster = CassandraCluster(
            hosts=",".join(free_loopback_hosts(3, (9042, 7000))),
            port=9042,
            storage_port=7000,
            jmx_port=free_port_run(3),
            base_dir=tmp_path_factory.mktemp("cluster"),
            # Not unsafe_system: the tests SIGKILL nodes, and a node killed before it flushed its
            # system tables would come back without the test keyspace.
            unsafe_system=False,
        )
        cluster.start_seconds = cluster.start()
    except (ServiceError, OSError) as exc:
        if cluster is not None:
            cluster.stop(timeout=10)
        server_unavailable(f"could not start the 3-node Cassandra cluster: {exc}")
    log.info("test cluster up on %s after %.1f s", cluster.url, cluster.start_seconds)
    yield cluster
    cluster.stop(timeout=30)


def fresh_keyspace():
    """A keyspace name no test used before."""
    return f"t_{uuid.uuid4().hex[:16]}"


def cassandra_url(server, keyspace, **params):
    """A cassandra:// URL for the server's host/port and this keyspace (params become the query)."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"cassandra://{server.host}:{server.port}/{keyspace}" + (f"?{query}" if query else "")


def redis_url(server, prefix):
    """A redis:// URL for the server's database (db 0 unless its URL names one) and this key prefix."""
    db = urlsplit(server.url).path.strip("/") or "0"
    return f"redis://{server.host}:{server.port}/{db}?prefix={prefix}"


def drop_redis_prefix(server, prefix):
    """Delete a test's keys (worth it only on a server that outlives the session)."""
    import redis

    client = redis.Redis.from_url(redis_url(server, prefix).split("?")[0], socket_timeout=10)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


def drop_keyspace(server, keyspace):
    """Drop a test keyspace (best effort; worth it only on a server that outlives the session)."""
    from cassandra.cluster import Cluster

    cluster = Cluster([server.host], port=server.port, protocol_version=5)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    except Exception as exc:  # cleanup must not fail a test
        log.warning("could not drop keyspace %s: %s", keyspace, exc)
    finally:
        cluster.shutdown()
