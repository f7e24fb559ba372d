"""A local Cassandra 5.0 cluster of three nodes (by default), each on its own loopback address.

Every node is a CassandraServer (svc_cassandra.py) with its own address (127.0.1.1, .2, .3), so the
CQL port (9042) and the storage port (7000) are the same on all of them; JMX listens on 127.0.0.1,
so node n gets CLUSTER_JMX_PORT + n - 1. The first node is the seed. Each node owns one token,
evenly spaced, and joins without bootstrap streaming (the cluster starts empty), so a node joins in
the time it takes to boot; nodes still start one after another, each once the previous one is UP,
because Cassandra refuses concurrent joins. "UP" is what `nodetool status` on the other running
nodes says (the real nodetool from the cassandra-all jar, over JMX).

Environment (all optional): CLUSTER_HOSTS (127.0.1.1,127.0.1.2,127.0.1.3), CLUSTER_PORT (9042),
CLUSTER_STORAGE_PORT (7000), CLUSTER_JMX_PORT (7301), CLUSTER_DIR (.cache/cluster), CLUSTER_HEAP
(512M), CLUSTER_START_TIMEOUT (240 s per node), CLUSTER_RF (3), CLUSTER_UNSAFE_SYSTEM (0; 1:
system tables not made durable, unsafe where nodes are killed), CASSANDRA_KEYSPACE (mnist), CASSANDRA_LIB.
"""

import logging
import os
import re
import subprocess
import time
from pathlib import Path

from svc_cassandra import JDK17_FLAGS, CassandraServer, cql_ready, java
from svc_common import REPO_ROOT, ServiceError, env_float, wait_until

log = logging.getLogger("services")

DEFAULT_HOSTS = "127.0.1.1,127.0.1.2,127.0.1.3"
MIN_TOKEN = -(2**63)


def token(index, count):
    """The one token of node `index` (0-based) of `count`, evenly spaced around the Murmur3 ring."""
    return MIN_TOKEN + index * (2**64 // count)


class CassandraCluster:
    """Nodes 1..N on their own loopback addresses: start(), stop(), kill_node(n), start_node(n), ring()."""

    def __init__(
        self,
        hosts=None,
        port=None,
        storage_port=None,
        jmx_port=None,
        base_dir=None,
        heap=None,
        keyspace=None,
        replication_factor=None,
        unsafe_system=None,
    ):
        env = os.environ
        # Faster schema changes, but a node SIGKILLed before it flushed its system tables forgets the
        # keyspaces created meanwhile: never where nodes are killed.
        if unsafe_system is None:
            unsafe_system = env.get("CLUSTER_UNSAFE_SYSTEM") == "1"
        self.hosts = [h.strip() for h in (hosts or env.get("CLUSTER_HOSTS") or DEFAULT_HOSTS).split(",") if h.strip()]
        self.port = int(port or env.get("CLUSTER_PORT", 9042))
        storage_port = int(storage_port or env.get("CLUSTER_STORAGE_PORT", 7000))
        jmx_port = int(jmx_port or env.get("CLUSTER_JMX_PORT", 7301))
        self.base_dir = Path(base_dir or env.get("CLUSTER_DIR") or REPO_ROOT / ".cache" / "cluster").resolve()
        self.keyspace = keyspace or env.get("CASSANDRA_KEYSPACE", "mnist")
        self.replication_factor = int(replication_factor or env.get("CLUSTER_RF", min(3, len(self.hosts))))
        self.start_timeout = env_float("CLUSTER_START_TIMEOUT", 240)
        heap = heap or env.get("CLUSTER_HEAP", "512M")
        self.nodes = [
            CassandraServer(
                base_dir=self.base_dir / f"node{n}",
                host=host,
                port=self.port,
                storage_port=storage_port,
                jmx_port=jmx_port + n - 1,
                heap=heap,
                keyspace=self.keyspace,
                cluster_name="mnist_cluster",
                unsafe_system=unsafe_system,
                seeds=f"{self.hosts[0]}:{storage_port}",
                initial_token=token(n - 1, len(self.hosts)),
            )
            for n, host in enumerate(self.hosts, start=1)
        ]

    @property
    def url(self):
        """The MNIST_DATABASE_URL that reaches the cluster (every node a contact point)."""
        return (
            f"cassandra://{','.join(self.hosts)}:{self.port}/{self.keyspace}"
            f"?replication_factor={self.replication_factor}"
        )

    @property
    def host(self):
        """The first node's address: a contact point, for code that wants one server's host and port."""
        return self.hosts[0]

    def node(self, n):
        """Node n, counted from 1 as in `make cluster-node-kill NODE=n`."""
        if not 1 <= int(n) <= len(self.nodes):
            raise ServiceError(f"no node {n}: the cluster has nodes 1..{len(self.nodes)}")
        return self.nodes[int(n) - 1]

    def start(self):
        """Start every node not running, one after another, each UP in the ring before the next; seconds taken."""
        started = time.monotonic()
        for n in range(1, len(self.nodes) + 1):
            self.start_node(n)
        return time.monotonic() - started

    def start_node(self, n):
        """Start node n (no-op if running); return once it answers CQL and the other running nodes see it UP."""
        node = self.node(n)
        began = time.monotonic()
        if not node.is_running():
            node.start(wait=False)
        node.wait_ready(self.start_timeout)
        self.wait_seen(n, "UN")
        seconds = time.monotonic() - began
        log.info("cluster node %s (%s) up and in the ring after %.1f s", n, node.host, seconds)
        return seconds

    def wait_seen(self, n, state="UN", timeout=None):
        """Wait until every other running node's `nodetool status` shows node n in `state` (UN: up, normal)."""
        host = self.node(n).host
        others = [m for m in range(1, len(self.nodes) + 1) if m != n and self.node(m).is_running()]

        def seen():
            return all(self.ring(m).get(host) == state for m in others)

        wait_until(seen, timeout or self.start_timeout, 1.0, f"node {n} ({host}) seen {state} by nodes {others}")

    def kill_node(self, n):
        """SIGKILL node n (a crash: no drain, no flush); True if it was running."""
        return self.node(n).kill()

    def stop(self, timeout=60.0):
        """Stop every node, the last first; the number stopped."""
        return sum(bool(node.stop(timeout)) for node in reversed(self.nodes))

    def nodetool(self, n, *args, timeout=60):
        """Run the real nodetool (from the cassandra-all jar) against node n over JMX; its output."""
        node = self.node(n)
        jars = sorted(str(p) for p in node.lib_dir.glob("*.jar"))
        cmd = [
            java(),
            # A short-lived client: small heap, quick JIT, so polling costs little on 2 cores.
            "-Xms32m",
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            *JDK17_FLAGS,
            # nodetool keeps a command history under the user's home; keep it with the node instead.
            f"-Duser.home={node.base_dir}",
            "-Dlogback.configurationFile=file://" + str(node.conf_dir / "logback-tools.xml"),
            "-cp",
            os.pathsep.join(jars),
            "org.apache.cassandra.tools.NodeTool",
            "-h",
            "127.0.0.1",
            "-p",
            str(node.jmx_port),
            *args,
        ]
        node.conf_dir.mkdir(parents=True, exist_ok=True)
        (node.conf_dir / "logback-tools.xml").write_text('<configuration><root level="OFF"/></configuration>\n')
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise ServiceError(f"nodetool {' '.join(args)} on node {n}: {result.stderr.strip()[-500:]}")
        return result.stdout

    def ring(self, n):
        """{address: state} as node n sees the ring (UN, DN, UJ, ...); {} if node n does not answer."""
        if not self.node(n).is_running():
            return {}
        try:
            out = self.nodetool(n, "status")
        except (ServiceError, subprocess.TimeoutExpired, OSError):
            return {}
        return dict((m.group(2), m.group(1)) for m in re.finditer(r"^([UD][NLJM])\s+(\S+)", out, re.MULTILINE))

    def status(self):
        """One line per node: its address, whether it runs and answers CQL, and the ring seen from it."""
        lines = []
        for n, node in enumerate(self.nodes, start=1):
            running = node.is_running()
            answers = running and cql_ready(node.host, node.port, timeout=5.0)
            ring = self.ring(n) if answers else {}
            seen = " ".join(f"{host}={state}" for host, state in sorted(ring.items()))
            lines.append(
                f"node {n} {node.host}:{node.port} jmx {node.jmx_port}: "
                f"{'running' if running else 'stopped'}{', answers CQL' if answers else ''}"
                f"{'; ring: ' + seen if seen else ''}"
            )
        return lines

    def all_up(self):
        """True when every node runs and every node sees all nodes UN."""
        hosts = set(self.hosts)
        for n in range(1, len(self.nodes) + 1):
            ring = self.ring(n)
            if {h for h, state in ring.items() if state == "UN"} != hosts:
                return False
        return True
