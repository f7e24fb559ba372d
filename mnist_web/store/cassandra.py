"""Records in Apache Cassandra (5.0; 4.x works too), partitioned by day so reads stay single-partition.

URL: ``cassandra://[user:password@]host1[,host2...][:port]/keyspace[?param=value&...]``

- hosts: contact points (the driver discovers the rest of the cluster); port default 9042.
- keyspace: default ``mnist``; letters, digits and ``_`` only.
- ``consistency``: consistency level of every read and write, default ``LOCAL_QUORUM``
  (any name of ``cassandra.ConsistencyLevel``: ONE, QUORUM, LOCAL_ONE, ALL, ...).
- ``replication``: ``SimpleStrategy`` (default) or ``NetworkTopologyStrategy``; only used when
  ``init_schema()`` creates the keyspace.
- ``replication_factor``: copies of each row, default 1 (per data centre with NetworkTopologyStrategy).
- ``local_dc``: the data centre whose nodes are queried first and which NetworkTopologyStrategy
  replicates to; default: the data centre of the first contact point (``datacenter1`` on one node).
- ``shards``: partitions per day, default 4, so one busy day is not one huge partition. Fixed once
  records exist: changing it hides the records already written.
- ``reconnect_max_delay``: seconds between reconnection attempts to a down node at most, default 10.
- ``protocol_version``: native protocol version, default 5 (Cassandra 4.0 and later); 4 for 3.x.

Schema (``init_schema``): ``record_data`` with PRIMARY KEY ((day, shard), id), newest first, where
day is the UTC date of the record's timeuuid, so ``get(id)`` knows its partition; ``record_days``,
one small partition listing the days that have records, so ``recent()`` walks back through days
that exist and stops at the oldest; the stats tables of cassandra_stats.py (exact rollups recounted
from the records, marked hours only: the cost follows recent traffic, not the table). Columns come
from store/fields.py; a field added since the table was made is added with ALTER TABLE.

Retention (``retention_days``): every write carries ``USING TTL`` = the seconds until its day expires
(retention.py), so a day's records, its ``record_days`` row and its stats rollups vanish together;
a record already past its retention (a late replay) is not written.
"""

import logging
import re
import socket
import time
import types
import zlib
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import RecordNotFound, StoreUnavailable
from ..forklocal import ForkLocal
from . import cassandra_stats, retention
from .base import RecordStore, check_label, label_attr, record_time
from .fields import FIELDS, ID, LABEL, MODE, NUMBER_LABEL, column_list, encode, from_cql_row, placeholders

log = logging.getLogger(__name__)

DAYS_BUCKET = 0  # record_days has a single partition: a few hundred rows per year
DAYS_AT_ONCE = 8  # record_days rows read per query while walking back through the days
# Tries, a second apart, of a schema statement that meets another process's change still spreading.
SCHEMA_RETRIES = 30
SCHEMA_RETRY_SECONDS = 1.0
PARAMS = {
    "consistency",
    "replication",
    "replication_factor",
    "local_dc",
    "shards",
    "reconnect_max_delay",
    "protocol_version",
}
COLUMNS = column_list()


def _driver_errors():
    """The driver exceptions that mean 'the database is not reachable/answering now'."""
    from cassandra import OperationTimedOut, RequestExecutionException
    from cassandra.cluster import NoHostAvailable, UnresolvableContactPoints
    from cassandra.connection import ConnectionException
    from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage, ServerError

    # RequestExecutionException covers Unavailable, ReadTimeout, WriteTimeout, Read/WriteFailure.
    # Not here on purpose: InvalidRequest and other validation errors are bugs, not outages.
    return (
        NoHostAvailable,
        UnresolvableContactPoints,
        ConnectionException,
        OperationTimedOut,
        RequestExecutionException,
        ServerError,
        OverloadedErrorMessage,
        IsBootstrappingErrorMessage,
    )


def day_of(record_id):
    """The partition day ('YYYY-MM-DD', UTC) of a record id: the date of its timeuuid."""
    return record_time(record_id).date().isoformat()


def cassandra_order(record_id):
    """A key that sorts timeuuids exactly as Cassandra's TimeUUIDType does (used to merge shards)."""
    # Time first, then the last 8 bytes compared as signed bytes (Cassandra's compatibility rule).
    return record_id.time, tuple(b - 256 if b > 127 else b for b in record_id.bytes[8:])


class CassandraStore(RecordStore):
    """Records in a Cassandra keyspace; one driver Cluster/Session per process, created lazily."""

    def __init__(
        self,
        hosts,
        port=9042,
        keyspace="mnist",
        consistency="LOCAL_QUORUM",
        replication="SimpleStrategy",
        replication_factor=1,
        local_dc=None,
        shards=4,
        timeout=2.0,
        username=None,
        password=None,
        reconnect_max_delay=10.0,
        protocol_version=5,
        retention_days=None,
    ):
        if not re.fullmatch(r"[A-Za-z0-9_]{1,48}", keyspace):
            raise ValueError(f"invalid Cassandra keyspace name {keyspace!r}")
        if replication not in ("SimpleStrategy", "NetworkTopologyStrategy"):
            raise ValueError("replication must be SimpleStrategy or NetworkTopologyStrategy")
        self.hosts = list(hosts)
        self.port = int(port)
        self.keyspace = keyspace
        self.consistency = consistency.upper()
        from cassandra import ConsistencyLevel

        if self.consistency not in ConsistencyLevel.name_to_value:  # fail at start-up, not on first write
            raise ValueError(f"unknown Cassandra consistency level {consistency!r}")
        self.replication = replication
        self.replication_factor = int(replication_factor)
        self.local_dc = local_dc
        self.shards = int(shards)
        if self.shards < 1:
            raise ValueError("shards must be at least 1")
        self.timeout = float(timeout)
        self.username = username
        self.password = password
        self.reconnect_max_delay = float(reconnect_max_delay)
        self.protocol_version = int(protocol_version)
        self.retention_days = retention_days
        # This process's driver objects; a forked child connects afresh (the driver's threads do not fork).
        self._conn = ForkLocal(self._open)
        self._rollups = cassandra_stats.Rollups(self)

    @classmethod
    def from_url(cls, url, timeout=2.0, retention_days=None):
        """Build a store from a cassandra:// URL (see the module docstring for the parameters)."""
        parts = urlsplit(url)
        if parts.scheme != "cassandra":
            raise ValueError(f"not a cassandra:// URL: {url!r}")
        netloc = parts.netloc
        username = password = None
        if "@" in netloc:
            creds, netloc = netloc.rsplit("@", 1)
            username, _, password = creds.partition(":")
            username, password = unquote(username), unquote(password)
        hosts, port = [], 9042
        for item in filter(None, netloc.split(",")):
            if item.startswith("["):  # [IPv6]:port
                host, _, rest = item[1:].partition("]")
                host_port = rest.lstrip(":")
            else:
                host, _, host_port = item.partition(":")
            if host_port:  # the driver uses one native port for every node
                port = int(host_port)
            hosts.append(host)
        params = dict(parse_qsl(parts.query))
        unknown = set(params) - PARAMS
        if unknown:
            raise ValueError(f"unknown cassandra URL parameter(s): {', '.join(sorted(unknown))}")
        return cls(
            hosts or ["127.0.0.1"],
            port=port,
            keyspace=parts.path.strip("/") or "mnist",
            consistency=params.get("consistency", "LOCAL_QUORUM"),
            replication=params.get("replication", "SimpleStrategy"),
            replication_factor=int(params.get("replication_factor", 1)),
            local_dc=params.get("local_dc"),
            shards=int(params.get("shards", 4)),
            timeout=timeout,
            username=username,
            password=password,
            reconnect_max_delay=float(params.get("reconnect_max_delay", 10.0)),
            protocol_version=int(params.get("protocol_version", 5)),
            retention_days=retention_days,
        )

    # -- connection ---------------------------------------------------------------------------

    def _connect(self):
        from cassandra import ConsistencyLevel
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy

        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=self.local_dc)),
            consistency_level=getattr(ConsistencyLevel, self.consistency),
            request_timeout=self.timeout,
        )
        cluster = Cluster(
            self.hosts,
            port=self.port,
            # Set, not negotiated: negotiation logs a warning per downgrade step.
            protocol_version=self.protocol_version,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            # Never give up on a node that went away: the spool waits for it to come back.
            reconnection_policy=ExponentialReconnectionPolicy(0.5, self.reconnect_max_delay, max_attempts=None),
            connect_timeout=max(self.timeout, 5.0),
            control_connection_timeout=max(self.timeout, 5.0),
            auth_provider=PlainTextAuthProvider(self.username, self.password) if self.username else None,
            # A record (its image) spans several TCP segments: with Nagle's algorithm the last one waits for
            # the node's delayed ACK, ~40 ms a write (measured: 48 ms a record, 4 ms with this).
            sockopts=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        try:
            session = cluster.connect()
        except BaseException:
            cluster.shutdown()
            raise
        return cluster, session

    def _open(self):
        """Connect this process: its cluster, session, and what it already wrote to record_days/stat_marks."""
        try:
            cluster, session = self._connect()
        except _driver_errors() as exc:
            raise StoreUnavailable(f"cassandra: {exc}") from exc
        return types.SimpleNamespace(cluster=cluster, session=session, stmts=None, days=set(), marked=set())

    def _get_session(self):
        """This process's session, connecting on first use and again in a forked child."""
        return self._conn.get().session

    def _statements(self):
        """Prepared statements, made once per session; creates the schema first if it is missing."""
        conn = self._conn.get()
        if conn.stmts is not None:
            return conn.session, conn.stmts
        session = conn.session
        from cassandra import InvalidRequest

        try:
            try:
                stmts = self._prepare(session)
            except InvalidRequest:
                # Keyspace or table missing (fresh cluster, app started before init_schema ran).
                self.init_schema()
                stmts = self._prepare(session)
        except _driver_errors() as exc:
            raise StoreUnavailable(f"cassandra: {type(exc).__name__}: {exc}") from exc
        conn.stmts = stmts
        return session, stmts

    def _prepare(self, session):
        ks = self.keyspace
        values = placeholders(len(FIELDS) + 2)
        texts = {
            "insert": f"INSERT INTO {ks}.record_data (day, shard, {COLUMNS}) VALUES ({values}) USING TTL ?",
            "insert_day": f"INSERT INTO {ks}.record_days (bucket, day) VALUES (?, ?) USING TTL ?",
            "get": f"SELECT {COLUMNS} FROM {ks}.record_data WHERE day = ? AND shard = ? AND id = ?",
            "exists": f"SELECT id, {MODE.name} FROM {ks}.record_data WHERE day = ? AND shard = ? AND id = ?",
            **{
                f"label_{field.attr}": f"UPDATE {ks}.record_data USING TTL ? SET {field.name} = ? "
                "WHERE day = ? AND shard = ? AND id = ?"
                for field in (LABEL, NUMBER_LABEL)
            },
            "page": f"SELECT {COLUMNS} FROM {ks}.record_data WHERE day = ? AND shard = ? LIMIT ?",
            "page_before": f"SELECT {COLUMNS} FROM {ks}.record_data WHERE day = ? AND shard = ? AND id < ? LIMIT ?",
            "days": f"SELECT day FROM {ks}.record_days WHERE bucket = ? AND day <= ? LIMIT ?",
            "days_before": f"SELECT day FROM {ks}.record_days WHERE bucket = ? AND day < ? LIMIT ?",
            **cassandra_stats.statements(ks),
        }
        stmts = {}
        for name, text in texts.items():
            stmt = session.prepare(text)
            # Every statement here may be re-run safely: inserts write the same values again.
            stmt.is_idempotent = True
            stmts[name] = stmt
        return stmts

    def _run(self, name, params, **kwargs):
        session, stmts = self._statements()
        try:
            return list(session.execute(stmts[name], params, **kwargs))  # later pages are fetched here too
        except _driver_errors() as exc:
            raise StoreUnavailable(f"cassandra: {type(exc).__name__}: {exc}") from exc

    def _wait(self, future):
        """The rows of an execute_async future (every page); driver errors become StoreUnavailable."""
        try:
            return list(future.result())
        except _driver_errors() as exc:
            raise StoreUnavailable(f"cassandra: {type(exc).__name__}: {exc}") from exc

    def _shard(self, record_id):
        # crc32 of the whole id: uuid1's node bits are constant per host, so they cannot spread rows.
        return zlib.crc32(record_id.bytes) % self.shards

    # -- RecordStore ----------------------------------------------------------------------------

    def init_schema(self):
        """Create the keyspace and tables if missing, add new columns (idempotent; safe at every start-up)."""
        session = self._get_session()
        if self.replication == "NetworkTopologyStrategy":
            dc = self.local_dc or self._first_dc(session)
            replication = f"{{'class': 'NetworkTopologyStrategy', '{dc}': {self.replication_factor}}}"
        else:
            replication = f"{{'class': 'SimpleStrategy', 'replication_factor': {self.replication_factor}}}"
        ks = self.keyspace
        columns = ",\n".join(f"{f.name} {f.cql_type}" for f in FIELDS)
        ddl = [
            f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {replication}",
            f"""CREATE TABLE IF NOT EXISTS {ks}.record_data (
                day text, shard int, {columns}, PRIMARY KEY ((day, shard), {ID.name})
            ) WITH CLUSTERING ORDER BY ({ID.name} DESC)""",
            f"""CREATE TABLE IF NOT EXISTS {ks}.record_days (
                bucket int,
                day text,
                PRIMARY KEY (bucket, day)
            ) WITH CLUSTERING ORDER BY (day DESC)""",
        ]
        try:
            # Schema changes wait for agreement between nodes: allow far more than a request.
            wait = max(self.timeout, 60.0)
            for statement in ddl:
                self._schema_change(session, statement, wait)
            had_stats = self._tables(session) >= {"stat_days"}
            for statement in self._missing_columns(session) + cassandra_stats.ddl(ks):
                self._schema_change(session, statement, wait)
        except _driver_errors() as exc:
            raise StoreUnavailable(f"cassandra: {type(exc).__name__}: {exc}") from exc
        if not had_stats:
            self._count_existing_days()

    def _schema_change(self, session, statement, wait):
        """Run one schema statement; retry (bounded) while another process's change still travels the ring.

        Workers starting together on a cluster race: one creates the keyspace through one node, and the
        next statement of another may reach a node that has not heard of it yet ("doesn't exist"), or find
        a column it meant to add already there.
        """
        from cassandra import InvalidRequest

        for attempt in range(SCHEMA_RETRIES):
            try:
                session.execute(statement, timeout=wait)
                return
            except InvalidRequest as exc:
                if "already exist" in str(exc):
                    return  # another process made the same change first
                lagging = "doesn't exist" in str(exc) or "unconfigured table" in str(exc)
                if not lagging or attempt == SCHEMA_RETRIES - 1:
                    raise
                log.info("schema not yet agreed (%s); retrying", exc)
                time.sleep(SCHEMA_RETRY_SECONDS)

    def _tables(self, session):
        rows = session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (self.keyspace,), timeout=30
        )
        return {row.table_name for row in rows}

    def _missing_columns(self, session):
        """ALTER TABLE statements for the fields record_data lacks (added since it was made)."""
        rows = session.execute(
            "SELECT column_name FROM system_schema.columns WHERE keyspace_name = %s AND table_name = 'record_data'",
            (self.keyspace,),
            timeout=30,
        )
        have = {row.column_name for row in rows}
        return [
            f"ALTER TABLE {self.keyspace}.record_data ADD {f.name} {f.cql_type}" for f in FIELDS if f.name not in have
        ]

    def _count_existing_days(self):
        """A keyspace made before the stats tables: mark every day it has, and count them once now."""
        days = list(self._days_back_from("9999-12-31"))
        session, stmts = self._statements()
        for day in days:
            self._wait(
                session.execute_async(stmts["mark"], cassandra_stats.mark_values(day, cassandra_stats.WHOLE_DAY, 0))
            )
        if days:
            log.info("cassandra: counting the records of %d existing days into the stats rollups", len(days))
            self._rollups.stats()

    def _first_dc(self, session):
        hosts = session.cluster.metadata.all_hosts()
        return hosts[0].datacenter if hosts else "datacenter1"

    def add(self, record):
        """Insert the record; writing the same id again rewrites the same values (idempotent).

        Returns once Cassandra acknowledged the write at the configured consistency. A new day's
        record_days row and the first mark of an hour go out concurrently with the record
        (execute_async), so a write costs one round trip. A record of another hour than the current
        one (a replay) marks its hour after the record is acknowledged (cassandra_stats.py).
        """
        from cassandra.query import UNSET_VALUE

        made = record_time(record.id)
        ttl = retention.day_ttl_seconds(made.date(), self.retention_days)
        if ttl is not None and ttl <= 0:
            return  # already past its retention (a late replay): it would be gone at once
        conn = self._conn.get()
        session, stmts = self._statements()
        day, hour = made.date().isoformat(), made.hour
        # UNSET, not null: no tombstone, and a replayed record keeps a label set meanwhile.
        values = [UNSET_VALUE if v is None else v for v in encode(record, "to_cql")]
        live = (day, hour) == cassandra_stats.current_hour()
        futures = [session.execute_async(stmts["insert"], (day, self._shard(record.id), *values, ttl or 0))]
        new_mark = live and (day, hour) not in conn.marked
        if new_mark:
            futures.append(session.execute_async(stmts["mark"], cassandra_stats.mark_values(day, hour, ttl)))
        if day not in conn.days:
            futures.append(session.execute_async(stmts["insert_day"], (DAYS_BUCKET, day, ttl or 0)))
        for future in futures:
            self._wait(future)
        if not live:  # after the acknowledgement: a recount that reads this mark sees the record
            self._wait(session.execute_async(stmts["mark"], cassandra_stats.mark_values(day, hour, ttl)))
        elif new_mark:
            conn.marked = {(day, hour)}  # earlier hours are sealed by others: forget them
        conn.days.add(day)

    def get(self, record_id):
        """Return one record (a single-partition read) or raise RecordNotFound."""
        rows = self._run("get", (day_of(record_id), self._shard(record_id), record_id))
        if not rows:
            raise RecordNotFound()
        return from_cql_row(rows[0])

    def recent(self, limit, cursor=None):
        """Newest first, `limit` at a time, after the cursor's record; walks back through existing days."""
        want = limit + 1  # one more than asked tells whether there is a next page
        top_day = day_of(cursor) if cursor else "9999-12-31"
        # The first day to read is almost always the cursor's, or today: ask for its page together with
        # the list of days, so that a page usually takes one round trip.
        first = day_of(cursor) if cursor else cassandra_stats.current_hour()[0]
        ahead = self._day_page_start(first, want, cursor)
        records = []
        for day in self._days_back_from(top_day):
            need = want - len(records)
            before = cursor if cursor and day == top_day else None
            if day == first and ahead is not None:
                records.extend(self._day_page_finish(ahead, need))
            else:
                records.extend(self._day_page_finish(self._day_page_start(day, need, before), need))
            ahead = None
            if len(records) >= want:
                break
        page = records[:limit]
        return page, (page[-1].id if len(records) > limit else None)

    def _days_back_from(self, top_day):
        """The days that have records, newest first from top_day, DAYS_AT_ONCE per query (a page needs one or two)."""
        statement = "days"
        while True:
            rows = self._run(statement, (DAYS_BUCKET, top_day, DAYS_AT_ONCE))
            for row in rows:
                yield row.day
            if len(rows) < DAYS_AT_ONCE:
                return  # the oldest day that has records
            statement, top_day = "days_before", rows[-1].day

    def _day_page_start(self, day, need, before):
        """Send the queries for up to `need` newest records of one day (older than `before`), one per shard."""
        session, stmts = self._statements()
        if before is None:
            return [session.execute_async(stmts["page"], (day, shard, need)) for shard in range(self.shards)]
        return [session.execute_async(stmts["page_before"], (day, shard, before, need)) for shard in range(self.shards)]

    def _day_page_finish(self, futures, need):
        """The `need` newest records of a day's page queries, merged across shards."""
        rows = [row for future in futures for row in self._wait(future)]
        rows.sort(key=lambda row: cassandra_order(row.id), reverse=True)
        return [from_cql_row(row) for row in rows[:need]]

    def set_label(self, record_id, label):
        """Store the user's label and return the record (RecordNotFound if there is none); marks its hour."""
        key = (day_of(record_id), self._shard(record_id), record_id)
        ttl = retention.ttl_seconds(record_id, self.retention_days)
        # Records are only deleted by expiry, so checking first keeps UPDATE from creating rows.
        found = [] if ttl is not None and ttl <= 0 else self._run("exists", key)
        if not found:
            raise RecordNotFound()
        mode = getattr(found[0], MODE.name)
        label = check_label(label, mode)
        # The label expires with its record (a cell outliving the row would bring back a husk of it).
        self._run(f"label_{label_attr(mode)}", (ttl or 0, label, *key))
        self._run("mark", cassandra_stats.mark_values(*cassandra_stats.hour_of(record_id), ttl))
        return self.get(record_id)

    def stats(self):
        """Counts per digit, labelled and correct: rollups plus a recount of the marked hours (cassandra_stats.py)."""
        return self._rollups.stats()

    def ping(self):
        """Ask the coordinator for its version."""
        session = self._get_session()
        try:
            session.execute("SELECT release_version FROM system.local", timeout=self.timeout)
        except _driver_errors() as exc:
            raise StoreUnavailable(f"cassandra: {type(exc).__name__}: {exc}") from exc

    def close(self):
        """Shut the driver down (in the process that created it)."""
        conn = self._conn.pop()
        if conn is not None:
            conn.cluster.shutdown()
