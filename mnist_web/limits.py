"""What the service accepts, defined once: digits and labels, image types, and the default size limits."""

# The digits the model predicts and a label may name.
DIGITS = range(10)
# What a prediction reads: one digit (the default), or a number of several digits.
MODES = ("digit", "number")
# What a prediction answered: a digit; not a digit; several digits (digit mode: not guessed as one);
# a number (number mode). A number with a part that is not a digit is answered "not_a_digit".
VERDICTS = ("digit", "not_a_digit", "several_digits", "number")
DIGIT_VERDICT, NOT_A_DIGIT_VERDICT = VERDICTS[:2]
# Longest number read or accepted as a label (a phone photo of a long number; far beyond any canvas).
MAX_NUMBER_DIGITS = 32

# Image formats (named from their magic bytes) and the MIME type a record stores for each.
IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "bmp": "image/bmp"}
# Further spellings clients send for the same formats (a raw body's Content-Type, a data URL's type).
IMAGE_TYPE_ALIASES = {"image/jpg": "jpeg", "image/x-ms-bmp": "bmp"}
ACCEPTED_IMAGE_TYPES = frozenset(IMAGE_TYPES.values()) | frozenset(IMAGE_TYPE_ALIASES)

# Defaults of the size limits (each overridable by its MNIST_* variable, see config.py).
# A 12 MP phone JPEG is 3-8 MB; sent as base64 JSON or a data URL it grows by a third: 16 MiB admits both.
MAX_UPLOAD_BYTES = 16 * 1024 * 1024
MAX_IMAGE_PIXELS = 16_000_000
MAX_DECODED_BYTES = 48 * 1024 * 1024
HISTORY_LIMIT = 100


def is_digit(value):
    """Whether value is an int (not a bool) naming a digit."""
    return isinstance(value, int) and not isinstance(value, bool) and value in DIGITS


def is_number(value):
    """Whether value is a string of 1 to MAX_NUMBER_DIGITS ASCII digits (leading zeros kept)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_NUMBER_DIGITS and value.isascii() and value.isdigit()
