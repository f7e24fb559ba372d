"""Record ids for requests that a trusted proxy may send twice.

nginx passes a POST on to a second try when the worker holding it dies before answering
(deploy/nginx: `proxy_next_upstream ... non_idempotent`). So that the retry cannot store a second
record, nginx names each client request (`X-Request-Id: $request_id`, 32 random hex digits, and
`X-Request-Start: $msec`, identical on every try) and the record id is derived from those: a
version-1 UUID whose time is the request's start and whose clock sequence and node come from a hash
of the request id. Every backend stores a record id once, so both tries leave one record.

The headers are used only when MNIST_PROXY_COUNT says a proxy sits in front (it replaces whatever a
client sent) and only if the start time is near now; otherwise, and without a proxy, the id is a fresh
timeuuid (store.base.new_record_id). Forging another request's id would need a preimage of the hash.
"""

import hashlib
import re
import time

from .store.base import UUID_EPOCH_TICKS, new_record_id, timeuuid

REQUEST_ID = re.compile(r"[0-9a-f]{32}")
REQUEST_START = re.compile(r"[0-9]{9,11}\.[0-9]{3}")
# A start time further than this from the worker's clock is not believed (a stale or odd header).
MAX_CLOCK_SKEW_SECONDS = 300


def record_id_for(headers, trusted_proxy):
    """The id of the record this request makes: derived from the proxy's request id if trusted, else fresh."""
    request_id = headers.get("X-Request-Id", "")
    start = headers.get("X-Request-Start", "")
    if not (trusted_proxy and REQUEST_ID.fullmatch(request_id) and REQUEST_START.fullmatch(start)):
        return new_record_id()
    seconds = float(start)
    if abs(seconds - time.time()) > MAX_CLOCK_SKEW_SECONDS:
        return new_record_id()
    return derived_record_id(request_id, int(start.replace(".", "")))


def derived_record_id(request_id, start_ms):
    """The version-1 UUID for a request id and its start (ms since 1970): same inputs, same id."""
    digest = int.from_bytes(hashlib.blake2b(request_id.encode("ascii"), digest_size=8).digest(), "big")
    # 14 bits of clock sequence, 48 of node with the multicast bit set: not a real MAC (RFC 4122 4.5).
    return timeuuid(start_ms * 10_000 + UUID_EPOCH_TICKS, digest >> 50, (digest & 0xFFFF_FFFF_FFFF) | 1 << 40)
