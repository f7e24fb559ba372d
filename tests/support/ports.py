"""Free TCP ports and free loopback addresses for servers the tests start."""

import random

from svc_common import ServiceError, free_port, port_open

__all__ = ["free_port", "free_loopback_hosts", "free_port_run"]


def free_loopback_hosts(count, ports, tries=50):
    """`count` addresses 127.0.X.1..count, for a random X, on which none of `ports` is taken yet."""
    rng = random.SystemRandom()
    for _ in range(tries):
        # 127.0.1.x is `make cluster`'s and 127.0.2.x `make test`'s: pick from the rest of 127/8.
        octet = rng.randrange(10, 250)
        hosts = [f"127.0.{octet}.{n}" for n in range(1, count + 1)]
        if not any(port_open(host, port, timeout=0.2) for host in hosts for port in ports):
            return hosts
    raise ServiceError(f"no free loopback addresses for {count} nodes after {tries} tries")


def free_port_run(count, tries=50):
    """The first of `count` consecutive free ports on 127.0.0.1 (a cluster's JMX ports: base + n - 1)."""
    for _ in range(tries):
        base = free_port()
        if base + count < 65535 and not any(port_open("127.0.0.1", base + i, timeout=0.2) for i in range(count)):
            return base
    raise ServiceError(f"no {count} consecutive free ports after {tries} tries")
