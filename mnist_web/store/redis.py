"""Records in Redis: one hash per record, a sorted set for newest-first order, counts per day for stats.

URL: ``redis://[:password@]host[:port][/db][?prefix=mnist:&...]``

- db: database number, default 0.
- ``prefix``: prepended to every key, default ``mnist:`` (tests use a fresh one each run).
- any other query parameter is passed to redis-py's ``ConnectionPool.from_url`` (e.g. ``health_check_interval``).

Keys: ``{prefix}record:{id}`` hash of the record's fields (store/fields.py); ``{prefix}recent`` sorted
set, all scores 0, members ``sort_token(id)`` so lexicographic order is creation order (a float score
cannot hold a 60-bit uuid time exactly); ``{prefix}stats:{day}`` hash of one UTC day's counts (a field
per digit, one per other answer named as in base.BUCKETS — ``not_a_digit``, ``several_digits``, ``number``,
``number_refused`` —, ``labelled`` and ``correct`` of digit mode, ``number_labelled`` and ``number_correct``)
and ``{prefix}stat_days`` the set of those days.

Stats: adds and labels run as Lua scripts, so the day's counts move atomically with the record:
re-adding an id already stored changes nothing (a spool replay or a retried write counts once), and a
label takes the old label's share out before putting the new one's in. stats() sums one small hash
per day: its cost grows with the days kept, not the records.

Retention (``retention_days``): a record's hash and its day's counts get the same EXPIREAT (midnight
after the day plus the retention, retention.py), so they vanish together and stats count the records
kept; recent() drops the expired members of ``recent`` first. A record already past its retention
is not stored. Stores made before the per-day counts (global ``digits``/``stats`` hashes) are
recounted into per-day hashes once, atomically, by init_schema().
"""

import logging
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import RecordNotFound, StoreUnavailable
from ..forklocal import ForkLocal
from ..limits import NOT_A_DIGIT_VERDICT
from . import retention
from .base import (
    BUCKET_NAMES,
    BUCKETS,
    STAT_KEYS,
    RecordStore,
    Stats,
    bucket,
    check_label,
    label_attr,
    record_time,
    sort_token,
)
from .fields import BY_ATTR, DIGIT, LABEL, MODE, NUMBER, from_mapping, to_mapping

log = logging.getLogger(__name__)
DATE = BY_ATTR["created_at"]

ADD_LUA = """
-- KEYS: record hash, recent zset, the day's stats hash, stat_days zset
-- ARGV: sort token, stats key, label or '', expire-at seconds or '', day, the answer a label must equal,
-- the labelled/correct fields' prefix, then the record's field/value pairs
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
if ARGV[3] ~= '' then
  redis.call('HINCRBY', KEYS[3], ARGV[7] .. 'labelled', 1)
  if ARGV[3] == ARGV[6] then redis.call('HINCRBY', KEYS[3], ARGV[7] .. 'correct', 1) end
end
redis.call('ZADD', KEYS[4], 0, ARGV[5])
if ARGV[4] ~= '' then
  redis.call('EXPIREAT', KEYS[1], ARGV[4])
  redis.call('EXPIREAT', KEYS[3], ARGV[4])
end
return 1
"""

LABEL_LUA = """
-- KEYS: record hash, the record's day stats hash
-- ARGV: the new label, the answer field (digit or number), the label field, the labelled/correct prefix
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
-- A refused record has no digit field: false, which equals no label (a refusal labelled is wrong).
local digit = redis.call('HGET', KEYS[1], ARGV[2])
local old = redis.call('HGET', KEYS[1], ARGV[3])
local labelled, correct = ARGV[4] .. 'labelled', ARGV[4] .. 'correct'
if not old then
  redis.call('HINCRBY', KEYS[2], labelled, 1)
elseif old == digit then
  redis.call('HINCRBY', KEYS[2], correct, -1)
end
if ARGV[1] == digit then redis.call('HINCRBY', KEYS[2], correct, 1) end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[1])
return 1
"""

MIGRATE_LUA = """
-- KEYS: old digits hash, old stats hash, recent zset, stat_days zset
-- ARGV: key prefix, digit field, label field, date field, the refusals' count field
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = 0
for _, token in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local h = string.sub(token, 17)
  local id = string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-' .. string.sub(h, 13, 16) .. '-' ..
    string.sub(h, 17, 20) .. '-' .. string.sub(h, 21, 32)
  local row = redis.call('HMGET', ARGV[1] .. 'record:' .. id, ARGV[2], ARGV[3], ARGV[4])
  if row[3] then
    local day = string.sub(row[3], 1, 10)
    local key = ARGV[1] .. 'stats:' .. day
    redis.call('HINCRBY', key, row[1] or ARGV[5], 1)
    if row[2] then
      redis.call('HINCRBY', key, 'labelled', 1)
      if row[2] == row[1] then redis.call('HINCRBY', key, 'correct', 1) end
    end
    redis.call('ZADD', KEYS[4], 0, day)
    n = n + 1
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
return n
"""

# Server replies that mean "not able to serve now" rather than a bug in our commands.
TRANSIENT_REPLIES = ("LOADING", "BUSY", "MISCONF", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


def day_of(record_id):
    """The UTC day ('YYYY-MM-DD') whose counts hold a record."""
    return record_time(record_id).date().isoformat()


class RedisStore(RecordStore):
    """Records in one Redis database under a key prefix; one connection pool per process, made lazily."""

    def __init__(self, url="redis://127.0.0.1:6379/0", prefix="mnist:", timeout=2.0, retention_days=None):
        self.url = url
        self.prefix = prefix
        self.timeout = float(timeout)
        self.retention_days = retention_days
        self._conn = ForkLocal(self._connect)

    @classmethod
    def from_url(cls, url, timeout=2.0, retention_days=None):
        """Build a store from a redis:// URL (see the module docstring for the parameters)."""
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query))
        prefix = params.pop("prefix", "mnist:")
        return cls(urlunsplit(parts._replace(query=urlencode(params))), prefix, timeout, retention_days)

    def _connect(self):
        import redis

        pool = redis.ConnectionPool.from_url(
            self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout, health_check_interval=30
        )
        client = redis.Redis(connection_pool=pool)
        scripts = {name: client.register_script(lua) for name, lua in (("add", ADD_LUA), ("label", LABEL_LUA))}
        return client, scripts

    def _call(self, fn):
        import redis

        try:
            return fn(*self._conn.get())
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
        """Nothing to create in Redis; recounts a store made before per-day counts, once."""
        keys = [self._key("digits"), self._key("stats"), self._key("recent"), self._key("stat_days")]
        args = [self.prefix, DIGIT.name, LABEL.name, DATE.name, NOT_A_DIGIT_VERDICT]
        migrated = self._call(lambda client, scripts: client.eval(MIGRATE_LUA, len(keys), *keys, *args))
        if migrated >= 0:
            log.info("redis: counted %d existing records into per-day stats", migrated)

    def add(self, record):
        """Store the record and count it, atomically; an id already stored is left as it is."""
        expire_at = retention.expires_at(record.id, self.retention_days)
        if expire_at is not None and retention.ttl_seconds(record.id, self.retention_days) <= 0:
            return  # already past retention (a late replay): it would be deleted at once
        day = day_of(record.id)
        label = getattr(record, label_attr(record.mode))
        label = "" if label is None else str(label)
        expire = "" if expire_at is None else int(expire_at.timestamp())
        answer = getattr(record, _answer(record.mode).attr)
        key = stat_field(bucket(record.digit, record.verdict, record.mode))
        answer = "" if answer is None else str(answer)
        args = [sort_token(record.id), str(key), label, expire, day, answer, _prefix(record.mode)]
        for name, value in to_mapping(record).items():
            args += [name, value]
        keys = [self._record_key(record.id), self._key("recent"), self._key(f"stats:{day}"), self._key("stat_days")]
        self._call(lambda client, scripts: scripts["add"](keys=keys, args=args))

    def get(self, record_id):
        """Return one record or raise RecordNotFound."""
        data = self._call(lambda client, scripts: client.hgetall(self._record_key(record_id)))
        if not data:
            raise RecordNotFound()
        return from_mapping(data)

    def recent(self, limit, cursor=None):
        """Newest first, `limit` at a time, after the cursor's record (exclusive)."""
        top = f"({sort_token(cursor)}" if cursor else "+"
        expired = retention.cutoff_token(self.retention_days)

        def fetch(client, scripts):
            if expired is not None:  # their hashes are gone already
                client.zremrangebylex(self._key("recent"), "-", f"({expired}")
            tokens = client.zrevrangebylex(self._key("recent"), top, "-", start=0, num=limit + 1)
            pipe = client.pipeline(transaction=False)
            for token in tokens[:limit]:
                pipe.hgetall(self._record_key(_token_id(token)))
            return tokens, pipe.execute()

        tokens, rows = self._call(fetch)
        records = [from_mapping(row) for row in rows if row]
        next_cursor = _token_id(tokens[limit - 1]) if len(tokens) > limit else None
        return records, next_cursor

    def set_label(self, record_id, label):
        """Store the user's label (a digit, or a number's digit string), adjusting the day's counts atomically."""
        record_key = self._record_key(record_id)
        exists, mode = self._call(
            lambda client, scripts: client.pipeline().exists(record_key).hget(record_key, MODE.name).execute()
        )
        if not exists:
            raise RecordNotFound()
        mode = mode.decode() if mode is not None else None
        label = check_label(label, mode)
        keys = [record_key, self._key(f"stats:{day_of(record_id)}")]
        args = [str(label), _answer(mode).name, BY_ATTR[label_attr(mode)].name, _prefix(mode)]
        found = self._call(lambda client, scripts: scripts["label"](keys=keys, args=args))
        if found == -1:
            raise RecordNotFound()
        return self.get(record_id)

    def stats(self):
        """Counts per digit and of refusals, labelled and correct: the sum of the per-day counts."""

        def fetch(client, scripts):
            days = client.zrange(self._key("stat_days"), 0, -1)
            pipe = client.pipeline(transaction=True)  # one consistent snapshot of every day
            for day in days:
                pipe.hgetall(self._key(f"stats:{day.decode()}"))
            counts = pipe.execute()
            gone = [day for day, found in zip(days, counts, strict=True) if not found]
            if gone:  # expired days
                client.zrem(self._key("stat_days"), *gone)
            return counts

        rows = []
        for counts in self._call(fetch):
            counts = {name.decode(): int(value) for name, value in counts.items()}
            rows += [(key, counts.get(stat_field(key), 0), 0, 0) for key in STAT_KEYS]
            # A day's labelled/correct counts: digit mode's, then number mode's (under any key of each mode).
            rows.append((BUCKETS["not_a_digit"], 0, counts.get("labelled", 0), counts.get("correct", 0)))
            rows.append((BUCKETS["number"], 0, counts.get(NUMBERS + "labelled", 0), counts.get(NUMBERS + "correct", 0)))
        return Stats.from_buckets(rows)

    def ping(self):
        """PING the server."""
        self._call(lambda client, scripts: client.ping())

    def close(self):
        """Disconnect this process's pool."""
        found = self._conn.pop()
        if found is not None:
            found[0].connection_pool.disconnect()


def stat_field(key):
    """A stats key's field in a day's hash: the digit, or the other answer's name (base.BUCKETS)."""
    return str(key) if key >= 0 else BUCKET_NAMES[key]


# The prefix of a number-mode record's labelled/correct fields in a day's stats hash.
NUMBERS = "number_"


def _prefix(mode):
    return NUMBERS if mode == "number" else ""


def _answer(mode):
    """The field a label is compared with: the number for a number-mode record, else the digit."""
    return NUMBER if mode == "number" else DIGIT


def _token_id(token):
    return uuid.UUID(hex=token.decode()[16:])
