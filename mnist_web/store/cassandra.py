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
that exist and stops at the oldest. ``stats()`` is a full scan of ``result``/``label`` (exact and
idempotent, unlike counters; O(records), acceptable at this service's volume).
"""

import datetime
import logging
import os
import re
import threading
import uuid
import zlib
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import RecordNotFound, StoreUnavailable
from .base import Record, RecordStore, Stats, check_label, record_time

log = logging.getLogger(__name__)

DAYS_BUCKET = 0  # record_days has a single partition: a few hundred rows per year
PARAMS = {
    "consistency",
    "replication",
    "replication_factor",
    "local_dc",
    "shards",
    "reconnect_max_delay",
    "protocol_version",
}
FIELDS = (
    "id, date, result, confidence, probabilities, source, client_ip, image, image_type, "
    "model_input, model_version, latency_ms, label"
)


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
        self._lock = threading.Lock()
        self._pid = None
        self._cluster = None
        self._session = None
        self._stmts = None
        self._days_written = set()  # days this process already listed in record_days

    @classmethod
    def from_url(cls, url, timeout=2.0):
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
        )
        try:
            session = cluster.connect()
        except BaseException:
            cluster.shutdown()
            raise
        return cluster, session

    def _get_session(self):
        """This process's session, connecting on first use and again in a forked child."""
        if self._session is not None and self._pid == os.getpid():
            return self._session
        with self._lock:
            if self._pid != os.getpid():
                # Forked: the parent's driver threads do not exist here; abandon its objects.
                self._cluster = self._session = self._stmts = None
                self._days_written = set()
                self._pid = os.getpid()
            if self._session is None:
                try:
                    self._cluster, self._session = self._connect()
                except _driver_errors() as exc:
                    raise StoreUnavailable(f"cassandra: {exc}") from exc
            return self._session

    def _statements(self):
        """Prepared statements, made once per session; creates the schema first if it is missing."""
        session = self._get_session()
        if self._stmts is not None:
            return session, self._stmts
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
        with self._lock:
            self._stmts = stmts
        return session, stmts

    def _prepare(self, session):
        ks = self.keyspace
        texts = {
            "insert": f"INSERT INTO {ks}.record_data (day, shard, {FIELDS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            "insert_day": f"INSERT INTO {ks}.record_days (bucket, day) VALUES (?, ?)",
            "get": f"SELECT {FIELDS} FROM {ks}.record_data WHERE day = ? AND shard = ? AND id = ?",
            "exists": f"SELECT id FROM {ks}.record_data WHERE day = ? AND shard = ? AND id = ?",
            "label": f"UPDATE {ks}.record_data SET label = ? WHERE day = ? AND shard = ? AND id = ?",
            "page": f"SELECT {FIELDS} FROM {ks}.record_data WHERE day = ? AND shard = ? LIMIT ?",
            "page_before": f"SELECT {FIELDS} FROM {ks}.record_data WHERE day = ? AND shard = ? AND id < ? LIMIT ?",
            "days": f"SELECT day FROM {ks}.record_days WHERE bucket = ? AND day <= ?",
            "scan": f"SELECT result, label FROM {ks}.record_data",
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
            return session.execute(stmts[name], params, **kwargs)
        except _driver_errors() as exc:
            raise StoreUnavailable(f"cassandra: {type(exc).__name__}: {exc}") from exc

    def _shard(self, record_id):
        # crc32 of the whole id: uuid1's node bits are constant per host, so they cannot spread rows.
        return zlib.crc32(record_id.bytes) % self.shards

    # -- RecordStore ----------------------------------------------------------------------------

    def init_schema(self):
        """Create the keyspace and tables if missing (idempotent; safe at every start-up)."""
        session = self._get_session()
        if self.replication == "NetworkTopologyStrategy":
            dc = self.local_dc or self._first_dc(session)
            replication = f"{{'class': 'NetworkTopologyStrategy', '{dc}': {self.replication_factor}}}"
        else:
            replication = f"{{'class': 'SimpleStrategy', 'replication_factor': {self.replication_factor}}}"
        ks = self.keyspace
        ddl = [
            f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {replication}",
            f"""CREATE TABLE IF NOT EXISTS {ks}.record_data (
                day text,
                shard int,
                id timeuuid,
                date timestamp,
                result int,
                confidence double,
                probabilities frozen<list<double>>,
                source text,
                client_ip text,
                image blob,
                image_type text,
                model_input blob,
                model_version text,
                latency_ms double,
                label int,
                PRIMARY KEY ((day, shard), id)
            ) WITH CLUSTERING ORDER BY (id DESC)""",
            f"""CREATE TABLE IF NOT EXISTS {ks}.record_days (
                bucket int,
                day text,
                PRIMARY KEY (bucket, day)
            ) WITH CLUSTERING ORDER BY (day DESC)""",
        ]
        try:
            for statement in ddl:
                # Schema changes wait for agreement between nodes: allow far more than a request.
                session.execute(statement, timeout=max(self.timeout, 60.0))
        except _driver_errors() as exc:
            raise StoreUnavailable(f"cassandra: {type(exc).__name__}: {exc}") from exc

    def _first_dc(self, session):
        hosts = session.cluster.metadata.all_hosts()
        return hosts[0].datacenter if hosts else "datacenter1"

    def add(self, record):
        """Insert the record; writing the same id again rewrites the same values (idempotent).

        Returns once Cassandra acknowledged the write at the configured consistency. A new day's
        record_days row goes out concurrently with the record (execute_async), so a write costs
        one round trip, not two.
        """
        from cassandra.query import UNSET_VALUE

        session, stmts = self._statements()
        day = day_of(record.id)
        values = (
            day,
            self._shard(record.id),
            record.id,
            record.created_at,
            record.digit,
            float(record.confidence),
            [float(p) for p in record.probabilities],
            record.source,
            record.client_ip,
            record.image,
            record.image_type,
            record.model_input,
            record.model_version,
            float(record.latency_ms),
            # UNSET, not null: no tombstone, and a replayed record keeps a label set meanwhile.
            UNSET_VALUE if record.label is None else record.label,
        )
        try:
            futures = [session.execute_async(stmts["insert"], values)]
            new_day = day not in self._days_written
            if new_day:
                futures.append(session.execute_async(stmts["insert_day"], (DAYS_BUCKET, day)))
            for future in futures:
                future.result()
        except _driver_errors() as exc:
            raise StoreUnavailable(f"cassandra: {type(exc).__name__}: {exc}") from exc
        if new_day:
            self._days_written.add(day)

    def get(self, record_id):
        """Return one record (a single-partition read) or raise RecordNotFound."""
        row = self._run("get", (day_of(record_id), self._shard(record_id), record_id)).one()
        if row is None:
            raise RecordNotFound()
        return _to_record(row)

    def recent(self, limit, cursor=None):
        """Newest first, `limit` at a time, after the cursor's record; walks back through existing days."""
        want = limit + 1  # one more than asked tells whether there is a next page
        top_day = day_of(cursor) if cursor else "9999-12-31"
        records = []
        for day in self._days_back_from(top_day):
            need = want - len(records)
            before = cursor if cursor and day == top_day else None
            records.extend(self._day_page(day, need, before))
            if len(records) >= want:
                break
        page = records[:limit]
        return page, (page[-1].id if len(records) > limit else None)

    def _days_back_from(self, top_day):
        # The driver pages through record_days; the loop ends at the oldest day that has records.
        for row in self._run("days", (DAYS_BUCKET, top_day)):
            yield row.day

    def _day_page(self, day, need, before):
        """Up to `need` newest records of one day (older than `before`), merged across shards."""
        session, stmts = self._statements()
        if before is None:
            futures = [session.execute_async(stmts["page"], (day, shard, need)) for shard in range(self.shards)]
        else:
            futures = [
                session.execute_async(stmts["page_before"], (day, shard, before, need)) for shard in range(self.shards)
            ]
        rows = []
        try:
            for future in futures:
                rows.extend(future.result())
        except _driver_errors() as exc:
            raise StoreUnavailable(f"cassandra: {type(exc).__name__}: {exc}") from exc
        rows.sort(key=lambda row: cassandra_order(row.id), reverse=True)
        return [_to_record(row) for row in rows[:need]]

    def set_label(self, record_id, label):
        """Store the user's label and return the record (RecordNotFound if there is none)."""
        label = check_label(label)
        key = (day_of(record_id), self._shard(record_id), record_id)
        # Records are never deleted, so checking first is race-free and keeps UPDATE from creating rows.
        if self._run("exists", key).one() is None:
            raise RecordNotFound()
        self._run("label", (label, *key))
        return self.get(record_id)

    def stats(self):
        """Counts per digit, labelled and correct, by a paged full scan of two small columns."""
        per_digit = {d: 0 for d in range(10)}
        labelled = correct = 0
        try:
            for row in self._run("scan", (), timeout=max(self.timeout, 30.0)):
                per_digit[row.result] = per_digit.get(row.result, 0) + 1
                if row.label is not None:
                    labelled += 1
                    correct += row.label == row.result
        except _driver_errors() as exc:  # later pages are fetched while iterating
            raise StoreUnavailable(f"cassandra: {type(exc).__name__}: {exc}") from exc
        return Stats(total=sum(per_digit.values()), per_digit=per_digit, labelled=labelled, correct=correct)

    def ping(self):
        """Ask the coordinator for its version."""
        session = self._get_session()
        try:
            session.execute("SELECT release_version FROM system.local", timeout=self.timeout)
        except _driver_errors() as exc:
            raise StoreUnavailable(f"cassandra: {type(exc).__name__}: {exc}") from exc

    def close(self):
        """Shut the driver down (in the process that created it)."""
        with self._lock:
            cluster, pid = self._cluster, self._pid
            self._cluster = self._session = self._stmts = None
        if cluster is not None and pid == os.getpid():
            cluster.shutdown()


def _to_record(row):
    created = row.date
    if created.tzinfo is None:  # the driver returns naive UTC datetimes
        created = created.replace(tzinfo=datetime.UTC)
    return Record(
        id=row.id if isinstance(row.id, uuid.UUID) else uuid.UUID(str(row.id)),
        created_at=created,
        digit=row.result,
        confidence=row.confidence,
        probabilities=list(row.probabilities or ()),
        source=row.source,
        client_ip=row.client_ip,
        image=bytes(row.image or b""),
        image_type=row.image_type,
        model_input=bytes(row.model_input or b""),
        model_version=row.model_version,
        latency_ms=row.latency_ms,
        label=row.label,
    )
