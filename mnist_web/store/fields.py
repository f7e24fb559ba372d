"""The one description of how a Record is stored: each field once, with its encodings per backend.

Every backend and the spool derive their columns, DDL, and row <-> Record conversions from FIELDS.
Adding a field to Record means adding one Field here (nullable, so that existing rows and spooled
records read back as None); the backends add a missing column to an existing table themselves.

| kind   | Python        | SQLite           | Cassandra            | text (Redis hash)  | JSON (spool)  |
|--------|---------------|------------------|----------------------|--------------------|---------------|
| uuid   | uuid.UUID     | TEXT             | timeuuid             | str                | str           |
| time   | UTC datetime  | TEXT (isoformat) | timestamp            | isoformat          | isoformat     |
| int    | int           | INTEGER          | int                  | decimal            | number        |
| float  | float         | REAL             | double               | JSON (repr: exact) | number        |
| floats | list of float | TEXT (JSON)      | frozen<list<double>> | JSON               | list          |
| text   | str           | TEXT             | text                 | itself             | string        |
| bytes  | bytes         | BLOB             | blob                 | bytes              | (own column)  |
"""

import dataclasses
import datetime
import json
import uuid

from .base import Record


def _same(value):
    return value


def _utc(moment):
    # The Cassandra driver returns naive UTC datetimes; every Record carries an aware one.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def _iso(moment):
    return moment.isoformat()


def _iso_z(moment):
    # JSON (the API and the spool): "Z" for UTC, as clients expect; fromisoformat reads both spellings.
    return moment.isoformat().replace("+00:00", "Z")


def _floats(values):
    return [float(v) for v in values]


def _json_float(value):
    return json.dumps(float(value))


def _json_floats(values):
    return json.dumps(_floats(values))


def _uuid(value):
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


@dataclasses.dataclass(frozen=True)
class Kind:
    """How one kind of value is encoded for each store; each codec skips None."""

    sql_type: str
    cql_type: str
    to_sql: object
    from_sql: object
    to_cql: object
    from_cql: object
    to_text: object
    from_text: object
    to_json: object = None  # None: not JSON (bytes: the spool keeps them in columns of their own)
    from_json: object = None


_TIME = datetime.datetime.fromisoformat
KINDS = {
    "uuid": Kind("TEXT", "timeuuid", str, uuid.UUID, _same, _uuid, str, uuid.UUID, str, uuid.UUID),
    "time": Kind("TEXT", "timestamp", _iso, _TIME, _same, _utc, _iso, _TIME, _iso_z, _TIME),
    "int": Kind("INTEGER", "int", int, int, int, int, str, int, int, int),
    "float": Kind("REAL", "double", float, float, float, float, _json_float, json.loads, float, float),
    "floats": Kind(
        "TEXT", "frozen<list<double>>", _json_floats, json.loads, _floats, list, _json_floats, json.loads, _floats, list
    ),  # fmt: skip
    "text": Kind("TEXT", "text", str, str, str, str, str, str, str, str),
    "bytes": Kind("BLOB", "blob", bytes, bytes, bytes, bytes, bytes, bytes),
}


@dataclasses.dataclass(frozen=True)
class Field:
    """One Record attribute: its stored name, its kind, and whether it may be None."""

    attr: str
    kind: str
    column: str = ""  # stored name where it differs from the attribute (kept for existing databases)
    nullable: bool = False
    public: bool = True  # shown in the API's JSON (Record.summary); blobs never are

    @property
    def name(self):
        """The column (or hash field) name in every store."""
        return self.column or self.attr

    def encode(self, codec, value):
        """Apply one of the kind's codecs ('to_sql', 'from_cql', ...); None stays None."""
        if value is None:
            return None
        if codec.startswith("from_") and self.kind != "bytes" and isinstance(value, bytes):
            value = value.decode()  # Redis answers bytes
        return getattr(KINDS[self.kind], codec)(value)

    @property
    def sql_type(self):
        """The SQLite column definition (type and NOT NULL)."""
        return KINDS[self.kind].sql_type + ("" if self.nullable else " NOT NULL")

    @property
    def cql_type(self):
        """The Cassandra column type."""
        return KINDS[self.kind].cql_type


# The Record, field by field, in column order. Column `date` holds created_at and `result` holds digit:
# names chosen before the Record had its own, kept so that existing databases stay readable.
FIELDS = (
    Field("id", "uuid"),
    Field("created_at", "time", column="date"),
    Field("digit", "int", column="result", nullable=True),  # None: answered "not a digit"
    Field("confidence", "float"),
    Field("probabilities", "floats"),
    Field("source", "text"),
    Field("client_ip", "text", public=False),
    Field("image", "bytes"),
    Field("image_type", "text"),
    Field("model_input", "bytes"),
    Field("model_version", "text"),
    Field("latency_ms", "float"),
    Field("label", "int", nullable=True),
    Field("verdict", "text", nullable=True),  # a row stored before refusals reads None: Record makes it "digit"
    Field("not_a_digit", "float", nullable=True),
)
BY_ATTR = {f.attr: f for f in FIELDS}
COLUMNS = tuple(f.name for f in FIELDS)
BLOBS = tuple(f for f in FIELDS if KINDS[f.kind].to_json is None)
SCALARS = tuple(f for f in FIELDS if f not in BLOBS)
PUBLIC = tuple(f for f in SCALARS if f.public)
ID, DIGIT, LABEL, VERDICT = BY_ATTR["id"], BY_ATTR["digit"], BY_ATTR["label"], BY_ATTR["verdict"]
if tuple(f.attr for f in FIELDS) != tuple(f.name for f in dataclasses.fields(Record)):
    raise RuntimeError("store/fields.py FIELDS must list the Record's fields in order")


def column_list(fields=FIELDS):
    """'a, b, c' for SELECT and INSERT statements."""
    return ", ".join(f.name for f in fields)


def placeholders(count):
    """'?,?,?' for `count` values."""
    return ",".join("?" * count)


def encode(record, codec, fields=FIELDS):
    """The record's values for one store ('to_sql', 'to_cql', ...), in `fields` order."""
    return tuple(f.encode(codec, getattr(record, f.attr)) for f in fields)


def decode(values, codec, fields=FIELDS, **known):
    """A Record from values in `fields` order; `known` gives attributes read elsewhere (the spool's blobs)."""
    found = {f.attr: f.encode(codec, value) for f, value in zip(fields, values, strict=True)}
    return Record(**found, **known)


def from_sql_row(row):
    """A Record from SQLite values in FIELDS order."""
    return decode(row, "from_sql")


def from_cql_row(row):
    """A Record from a Cassandra row selected with column_list()."""
    return decode([getattr(row, f.name, None) for f in FIELDS], "from_cql")


def to_mapping(record, codec="to_text", fields=FIELDS, key="name"):
    """{name: value} of the record's non-None fields (a Redis hash; the spool's JSON, keyed by attribute)."""
    found = ((f, getattr(record, f.attr)) for f in fields)
    return {getattr(f, key): f.encode(codec, value) for f, value in found if value is not None}


def from_mapping(mapping, codec="from_text", fields=FIELDS, key="name", **known):
    """A Record from to_mapping's form; keys may be bytes (Redis); a missing nullable field is None."""
    text = {(k.decode() if isinstance(k, bytes) else k): v for k, v in mapping.items()}
    return decode([text.get(getattr(f, key)) for f in fields], codec, fields, **known)


def summary(record):
    """The record's public fields as JSON-ready values, keyed by attribute (the API's prediction object)."""
    return {f.attr: f.encode("to_json", getattr(record, f.attr)) for f in PUBLIC}
