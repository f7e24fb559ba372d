"""The record store interface every backend implements, and the record it stores."""

import abc
import dataclasses
import datetime
import random
import threading
import time
import uuid

from ..errors import InvalidLabel
from ..forklocal import ForkLocal
from ..limits import DIGIT_VERDICT, DIGITS, NOT_A_DIGIT_VERDICT, is_digit, is_number


@dataclasses.dataclass
class Record:
    """One prediction: what was sent, what the model saw and said, and the user's label if given."""

    id: uuid.UUID  # a version-1 (time) UUID made by the client, so replays are idempotent
    created_at: datetime.datetime  # UTC, millisecond precision
    digit: int | None  # None when no single digit is the answer (a number, several digits, not a digit)
    confidence: float
    probabilities: list
    source: str  # canvas / upload / api
    client_ip: str
    image: bytes
    image_type: str  # one of limits.IMAGE_TYPES
    model_input: bytes  # the 28x28 uint8 image the model saw, row-major
    model_version: str
    latency_ms: float
    label: int | None = None
    verdict: str | None = None  # limits.VERDICTS; None (a row stored before verdicts) is derived from digit
    not_a_digit: float | None = None  # probability that the drawing (a number: its most doubtful part) is no digit
    mode: str | None = None  # limits.MODES; None in records made before number mode: "digit"
    number: str | None = None  # the digit string read (number mode, or digit mode's several_digits)
    digits: list | None = None  # per digit read: {digit, confidence, probabilities, not_a_digit, box}
    number_label: str | None = None  # the user's correct number, a digit string (number-mode records)

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
    """Counts per predicted digit and of the other answers, and accuracy over the labelled records.

    labelled/correct (and accuracy) are over digit-mode records; numbers_* over number-mode records,
    a number being correct when its label is the whole digit string read.
    """

    per_digit: dict  # digit -> count
    labelled: int
    correct: int
    not_a_digit: int = 0  # digit mode: refused as not a digit
    several_digits: int = 0  # digit mode: the drawing held several digits
    numbers: int = 0  # number mode: read as a number
    numbers_refused: int = 0  # number mode: a part was not a digit
    numbers_labelled: int = 0
    numbers_correct: int = 0

    @property
    def total(self):
        """Every record counted: the per-digit counts and every other answer."""
        others = self.not_a_digit + self.several_digits + self.numbers + self.numbers_refused
        return sum(self.per_digit.values()) + others

    @property
    def accuracy(self):
        """Share of labelled records whose prediction matched the label, or None if none are labelled."""
        return self.correct / self.labelled if self.labelled else None

    @property
    def number_accuracy(self):
        """Share of labelled number-mode records read exactly right, or None if none are labelled."""
        return self.numbers_correct / self.numbers_labelled if self.numbers_labelled else None

    @classmethod
    def from_buckets(cls, rows):
        """Stats from (key, total, labelled, correct) rows (see bucket(): a digit, or a BUCKETS key or name).

        A key may come more than once.
        """
        found = cls(zero_per_digit(), 0, 0)
        for key, total, labelled, correct in rows:
            key = BUCKETS[key] if key in BUCKETS else int(key)
            if key >= 0:
                found.per_digit[key] += total
            else:
                name = BUCKET_NAMES[key]
                setattr(found, COUNTED_AS[name], getattr(found, COUNTED_AS[name]) + total)
            if key in NUMBER_BUCKETS:
                found.numbers_labelled += labelled
                found.numbers_correct += correct
            else:
                found.labelled += labelled
                found.correct += correct
        return found


# Stats keys of the records that are not one digit, beside the digits 0-9 (negative: never a digit).
BUCKETS = {"not_a_digit": -1, "several_digits": -2, "number": -3, "number_refused": -4}
BUCKET_NAMES = {key: name for name, key in BUCKETS.items()}
COUNTED_AS = {"not_a_digit": "not_a_digit", "several_digits": "several_digits", "number": "numbers"}
COUNTED_AS["number_refused"] = "numbers_refused"
NUMBER_BUCKETS = (BUCKETS["number"], BUCKETS["number_refused"])
# Every stats key in a fixed order: the digits, then the others (Cassandra packs its counts in this order).
STAT_KEYS = (*range(10), *BUCKETS.values())


def bucket(digit, verdict, mode):
    """The stats key of a record: its digit, or BUCKETS' key for an answer that is no single digit."""
    if mode == "number":
        return BUCKETS["number" if verdict == "number" else "number_refused"]
    if digit is not None:
        return int(digit)
    return BUCKETS["several_digits" if verdict == "several_digits" else "not_a_digit"]


def counts_as_correct(label, digit, number_label, number):
    """Whether a labelled record's answer was right: the digit for a digit, the whole string for a number."""
    if label is not None:
        return digit is not None and int(label) == int(digit)
    return number_label is not None and number_label == number


UUID_EPOCH_TICKS = 0x01B21DD213814000  # uuid1 time counts 100 ns intervals since 1582-10-15; this is 1970
# RFC 9562 section 6.10: a random node id sets the multicast bit, so it can never be a real MAC address.
RANDOM_NODE_BIT = 1 << 40


class _TimeuuidClock:
    """One process's timeuuid source: a random node and clock sequence, and 100 ns ticks that never repeat.

    uuid.uuid1() asks the uuidd daemon (a failed socket connect on every call where none runs) and uses
    the host's MAC for every process; this takes a few microseconds, and processes differ by their node.
    """

    def __init__(self):
        rng = random.SystemRandom()
        self.node = rng.getrandbits(48) | RANDOM_NODE_BIT
        self.clock_seq = rng.getrandbits(14)
        self._last = 0
        self._lock = threading.Lock()

    def next_ticks(self):
        """Now in uuid1 ticks, one more than the last answer if the clock has not moved (or went back)."""
        with self._lock:
            self._last = max(time.time_ns() // 100 + UUID_EPOCH_TICKS, self._last + 1)
            return self._last


_clock = ForkLocal(_TimeuuidClock)  # a forked worker draws its own node


def new_record_id():
    """A fresh time-based UUID (timeuuid), unique even for records made in the same millisecond."""
    clock = _clock.get()
    return timeuuid(clock.next_ticks(), clock.clock_seq, clock.node)


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


def check_label(label, mode=None):
    """Return the label if it fits the record's mode, else raise InvalidLabel (bools and floats are refused).

    A digit-mode record takes a digit (an int); a number-mode record a digit string such as "042".
    """
    if mode == "number":
        if not is_number(label):
            raise InvalidLabel('label a number with its digits as a string, such as "042"')
    elif not is_digit(label):
        raise InvalidLabel()
    return label


def label_attr(mode):
    """The Record attribute a label of a record of this mode goes to: `number_label` for numbers, else `label`."""
    return "number_label" if mode == "number" else "label"


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
