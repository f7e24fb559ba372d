"""Records in Redis: one hash per record, a sorted set for newest-first order, counters for stats.

URL: ``redis://[:password@]host[:port][/db][?prefix=mnist:&...]``

- db: database number, default 0.
- ``prefix``: prepended to every key, default ``mnist:`` (tests use a fresh one each run).
- any other query parameter is passed to redis-py's ``ConnectionPool.from_url`` (e.g. ``health_check_interval``).

Keys: ``{prefix}record:{id}`` hash of the record's fields; ``{prefix}recent`` sorted set, all scores 0,
members ``sort_token(id)`` so lexicographic order is creation order (a float score cannot hold a
60-bit uuid time exactly); ``{prefix}digits`` hash digit -> count; ``{prefix}stats`` hash with
``labelled`` and ``correct``. Adds and labels run as Lua scripts, so counters move atomically with
the record, and re-adding an existing id changes nothing (idempotent).
"""

import datetime
import json
import logging
import os
import threading
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import RecordNotFound, StoreUnavailable
from .base import Record, RecordStore, Stats, check_label, sort_token

log = logging.getLogger(__name__)

ADD_LUA = """
-- KEYS: record hash, recent zset, digits hash, stats hash
-- ARGV: sort token, digit, label or '', then the record's field/value pairs
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
if ARGV[3] ~= '' then
  redis.call('HINCRBY', KEYS[4], 'labelled', 1)
  if ARGV[3] == ARGV[2] then redis.call('HINCRBY', KEYS[4], 'correct', 1) end
end
return 1
"""

LABEL_LUA = """
-- KEYS: record hash, stats hash; ARGV: the new label
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local result = redis.call('HGET', KEYS[1], 'result')
local old = redis.call('HGET', KEYS[1], 'label')
if not old then
  redis.call('HINCRBY', KEYS[2], 'labelled', 1)
elseif old == result then
  redis.call('HINCRBY', KEYS[2], 'correct', -1)
end
if ARGV[1] == result then redis.call('HINCRBY', KEYS[2], 'correct', 1) end
redis.call('HSET', KEYS[1], 'label', ARGV[1])
return 1
"""

# Server replies that mean "not able to serve now" rather than a bug in our commands.
TRANSIENT_REPLIES = ("LOADING", "BUSY", "MISCONF", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


class RedisStore(RecordStore):
    """Records in one Redis database under a key prefix; one connection pool per process, made lazily."""

    def __init__(self, url="redis://127.0.0.1:6379/0", prefix="mnist:", timeout=2.0):
        self.url = url
        self.prefix = prefix
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._pid = None
        self._client = None
        self._scripts = None

    @classmethod
    def from_url(cls, url, timeout=2.0):
        """Build a store from a redis:// URL (see the module docstring for the parameters)."""
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query))
        prefix = params.pop("prefix", "mnist:")
        return cls(urlunsplit(parts._replace(query=urlencode(params))), prefix=prefix, timeout=timeout)

    def _redis(self):
        """This process's client and scripts, created on first use and again after a fork."""
        if self._client is not None and self._pid == os.getpid():
            return self._client, self._scripts
        import redis

        with self._lock:
            if self._client is None or self._pid != os.getpid():
                pool = redis.ConnectionPool.from_url(
                    self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout, health_check_interval=30
                )
                client = redis.Redis(connection_pool=pool)
                self._scripts = {"add": client.register_script(ADD_LUA), "label": client.register_script(LABEL_LUA)}
                self._client = client
                self._pid = os.getpid()
            return self._client, self._scripts

    def _call(self, fn):
        import redis

        try:
            return fn(*self._redis())
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
        except redis.ResponseError as exc:
            if str(exc).startswith(TRANSIENT_REPLIES):
                raise StoreUnavailable(f"redis: {exc}") from exc
            raise

    def _key(self, name):
        return f"{self.prefix}{name}"

    def _record_key(self, record_id):
        return f"{self.prefix}record:{record_id}"

    def init_schema(self):
        """Nothing to create in Redis; checks the server answers."""
        self.ping()

    def add(self, record):
        """Store the record and count it, atomically; an id already stored is left as it is."""
        fields = {
            "id": str(record.id),
            "date": record.created_at.isoformat(),
            "result": str(record.digit),
            "confidence": json.dumps(float(record.confidence)),
            "probabilities": json.dumps([float(p) for p in record.probabilities]),
            "source": record.source,
            "client_ip": record.client_ip,
            "image": record.image,
            "image_type": record.image_type,
            "model_input": record.model_input,
            "model_version": record.model_version,
            "latency_ms": json.dumps(float(record.latency_ms)),
        }
        if record.label is not None:
            fields["label"] = str(record.label)
        args = [sort_token(record.id), str(record.digit), "" if record.label is None else str(record.label)]
        for name, value in fields.items():
            args += [name, value]
        keys = [self._record_key(record.id), self._key("recent"), self._key("digits"), self._key("stats")]
        self._call(lambda client, scripts: scripts["add"](keys=keys, args=args))

    def get(self, record_id):
        """Return one record or raise RecordNotFound."""
        data = self._call(lambda client, scripts: client.hgetall(self._record_key(record_id)))
        if not data:
            raise RecordNotFound()
        return _to_record(data)

    def recent(self, limit, cursor=None):
        """Newest first, `limit` at a time, after the cursor's record (exclusive)."""
        top = f"({sort_token(cursor)}" if cursor else "+"

        def fetch(client, scripts):
            tokens = client.zrevrangebylex(self._key("recent"), top, "-", start=0, num=limit + 1)
            pipe = client.pipeline(transaction=False)
            for token in tokens[:limit]:
                pipe.hgetall(self._record_key(uuid.UUID(hex=token.decode()[16:])))
            return tokens, pipe.execute()

        tokens, rows = self._call(fetch)
        records = [_to_record(row) for row in rows if row]
        next_cursor = uuid.UUID(hex=tokens[limit - 1].decode()[16:]) if len(tokens) > limit else None
        return records, next_cursor

    def set_label(self, record_id, label):
        """Store the user's label, adjusting the labelled/correct counters atomically."""
        label = check_label(label)
        keys = [self._record_key(record_id), self._key("stats")]
        found = self._call(lambda client, scripts: scripts["label"](keys=keys, args=[str(label)]))
        if found == -1:
            raise RecordNotFound()
        return self.get(record_id)

    def stats(self):
        """Counts per digit, labelled and correct, from the counters."""

        def fetch(client, scripts):
            pipe = client.pipeline(transaction=True)  # one consistent snapshot of both hashes
            pipe.hgetall(self._key("digits"))
            pipe.hgetall(self._key("stats"))
            return pipe.execute()

        digits, counters = self._call(fetch)
        per_digit = {d: 0 for d in range(10)}
        for digit, count in digits.items():
            per_digit[int(digit)] = int(count)
        return Stats(
            total=sum(per_digit.values()),
            per_digit=per_digit,
            labelled=int(counters.get(b"labelled", 0)),
            correct=int(counters.get(b"correct", 0)),
        )

    def ping(self):
        """PING the server."""
        self._call(lambda client, scripts: client.ping())

    def close(self):
        """Disconnect this process's pool."""
        with self._lock:
            client, pid = self._client, self._pid
            self._client = self._scripts = None
        if client is not None and pid == os.getpid():
            client.connection_pool.disconnect()


def _to_record(data):
    text = {k.decode(): v for k, v in data.items()}

    def s(name):
        return text[name].decode()

    return Record(
        id=uuid.UUID(s("id")),
        created_at=datetime.datetime.fromisoformat(s("date")),
        digit=int(s("result")),
        confidence=json.loads(s("confidence")),
        probabilities=json.loads(s("probabilities")),
        source=s("source"),
        client_ip=s("client_ip"),
        image=bytes(text["image"]),
        image_type=s("image_type"),
        model_input=bytes(text["model_input"]),
        model_version=s("model_version"),
        latency_ms=json.loads(s("latency_ms")),
        label=int(s("label")) if "label" in text else None,
    )
