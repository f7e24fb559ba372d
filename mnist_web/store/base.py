"""The record store interface every backend implements, and the record it stores."""

import abc
import dataclasses
import datetime
import uuid

from ..errors import InvalidLabel
from ..limits import DIGIT_VERDICT, DIGITS, NOT_A_DIGIT_VERDICT, is_digit


@dataclasses.dataclass
class Record:
    """One prediction: what was sent, what the model saw and said, and the user's label if given."""

    id: uuid.UUID  # a version-1 (time) UUID made by the client, so replays are idempotent
    created_at: datetime.datetime  # UTC, millisecond precision
    digit: int | None  # None when the model answered "not a digit"
    confidence: float  # probability of the answer: the digit's, or not_a_digit's when refused
    probabilities: list
    source: str  # canvas / upload / api
    client_ip: str
    image: bytes
    image_type: str  # one of limits.IMAGE_TYPES
    model_input: bytes  # the 28x28 uint8 image the model saw, row-major
    model_version: str
    latency_ms: float
    label: int | None = None
    verdict: str | None = None  # limits.VERDICTS; None (a row stored before refusals) is derived from digit
    not_a_digit: float | None = None  # probability that the drawing is no digit (None: stored before refusals)

    def __post_init__(self):
        # Rows written before the verdict existed hold a digit: derive what they would have stored.
        if self.verdict is None:
            self.verdict = DIGIT_VERDICT if self.digit is not None else NOT_A_DIGIT_VERDICT

    def summary(self):
        """The JSON-ready form without the image bytes or the client's address (store/fields.py: PUBLIC)."""
        from .fields import summary  # fields.py describes this class, so it imports this module

        return summary(self)


@dataclasses.dataclass
class Stats:
    """Counts per predicted digit (and of refusals) and accuracy over the labelled records."""

    per_digit: dict  # digit -> count
    labelled: int
    correct: int  # a refused record labelled with a digit is labelled, never correct
    not_a_digit: int = 0  # records answered "not a digit"

    @property
    def total(self):
        """Every record counted: the per-digit counts and the refusals."""
        return sum(self.per_digit.values()) + self.not_a_digit

    @property
    def accuracy(self):
        """Share of labelled records whose prediction matched the label, or None if none are labelled."""
        return self.correct / self.labelled if self.labelled else None


def new_record_id():
    """A fresh time-based UUID (timeuuid), unique even for records made in the same millisecond."""
    return uuid.uuid1()


UUID_EPOCH_TICKS = 0x01B21DD213814000  # uuid1 time counts 100 ns intervals since 1582-10-15; this is 1970
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def record_time(record_id):
    """The UTC time a timeuuid was made, at millisecond precision."""
    micros = (record_id.time - UUID_EPOCH_TICKS) // 10
    moment = EPOCH + datetime.timedelta(microseconds=micros)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def uuid_ticks(moment):
    """A UTC datetime as uuid1 time: 100 ns ticks since 1582-10-15."""
    return (moment - EPOCH) // datetime.timedelta(microseconds=1) * 10 + UUID_EPOCH_TICKS


def timeuuid_at(moment, rng, tick=0):
    """A version-1 UUID made at `moment` (+ tick x 100 ns) with random clock sequence and node (bulk loads)."""
    return timeuuid(uuid_ticks(moment) + tick, rng.getrandbits(14), rng.getrandbits(48))


def timeuuid(ticks, clock_seq, node):
    """The version-1 UUID of a time (100 ns ticks since 1582-10-15), a 14-bit clock sequence and a 48-bit node."""
    fields = (ticks & 0xFFFFFFFF, (ticks >> 32) & 0xFFFF, ((ticks >> 48) & 0x0FFF) | 0x1000)
    return uuid.UUID(fields=(*fields, ((clock_seq >> 8) & 0x3F) | 0x80, clock_seq & 0xFF, node))


def sort_token(record_id):
    """A string that sorts records by creation time (then id), shared by every backend's ordering."""
    return f"{record_id.time:016x}{record_id.hex}"


def check_label(label):
    """Return the label as a digit (an int) or raise InvalidLabel (bools and floats are refused)."""
    if not is_digit(label):
        raise InvalidLabel()
    return label


def zero_per_digit():
    """{digit: 0} for every digit: the start of every backend's per-digit counts."""
    return dict.fromkeys(DIGITS, 0)


class RecordStore(abc.ABC):
    """Where predictions are kept. Every method may raise StoreUnavailable when the backend is down."""

    @abc.abstractmethod
    def init_schema(self):
        """Create the keyspace/tables if missing (idempotent)."""

    @abc.abstractmethod
    def add(self, record):
        """Store a record; writing the same id twice leaves one record (idempotent)."""

    @abc.abstractmethod
    def get(self, record_id):
        """Return the record with this id (uuid.UUID) or raise RecordNotFound."""

    @abc.abstractmethod
    def recent(self, limit, cursor=None):
        """Return (records newest first, next_cursor or None); cursor is the id of the last record seen."""

    @abc.abstractmethod
    def set_label(self, record_id, label):
        """Store the user's correct digit for a record and return the updated record."""

    @abc.abstractmethod
    def stats(self):
        """Return Stats over all records."""

    @abc.abstractmethod
    def ping(self):
        """Raise StoreUnavailable unless the backend answers."""

    def close(self):  # noqa: B027  (optional hook: most backends have nothing to release)
        """Release connections (default: nothing to release)."""
