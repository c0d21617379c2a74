"""The checks themselves, with no framework around them.

Why so strict: every value here ends up in PostgreSQL or in a money calculation.
- Amounts are ASCII decimal strings `^[0-9]+(\\.[0-9]+)?$`: no exponent (`1e400` overflows the
  decimal context, `1e30` the column), no sign, no `_` separators, no Unicode or full-width
  digits (Python's `Decimal` and `int` accept all of these), no surrounding spaces, no JSON
  numbers (a float has already lost digits before we see it).
- Money columns are NUMERIC(28, 8): at most 20 integer digits and 8 decimals.
- Identifiers are compared byte for byte (idempotency, duplicate detection): `"tx-1 "` and
  `"tx-1"` are different ids, so whitespace at either end is refused, never trimmed, and so is
  any control, format or unassigned character (PostgreSQL cannot store NUL at all).
- Any text refuses NUL and lone surrogates: neither can be stored, and both would otherwise
  surface as a database error (a 500) instead of a 400.
"""

import re
import unicodedata
from datetime import date
from decimal import Decimal

import pycountry

AMOUNT_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
SIGNED_AMOUNT_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
_AMOUNT = re.compile(r"[0-9]+(?:\.([0-9]+))?")
_SIGNED_AMOUNT = re.compile(r"-?[0-9]+(?:\.([0-9]+))?")

CURRENCY = re.compile(r"[A-Za-z0-9]{2,8}")

# NUMERIC(28, 8): the widest amount any money column stores.
AMOUNT_MAX_DECIMALS = 8
AMOUNT_MAX_INTEGER_DIGITS = 20
AMOUNT_LIMIT = Decimal(10) ** AMOUNT_MAX_INTEGER_DIGITS  # exclusive
# The longest amount text worth reading: 20 digits, a point, 8 decimals, a sign, and some
# leading zeros a client may pad with.
AMOUNT_MAX_LENGTH = 40

# Dates a person or a report can have: nobody alive was born before 1900, and nothing in the
# books predates the platform's epoch.
EARLIEST_DATE = date(1900, 1, 1)

# PostgreSQL's integer columns (bigint); a larger id cannot name a row.
MAX_BIGINT = 2**63 - 1


class InputError(ValueError):
    """A value that is not acceptable input; the message says why, for the client."""


def parse_amount(
    text,
    *,
    allow_zero: bool = False,
    allow_negative: bool = False,
    max_decimals: int = AMOUNT_MAX_DECIMALS,
) -> Decimal:
    """The Decimal an amount string spells, or InputError. Never rounds."""
    if not isinstance(text, str):
        raise InputError('Send the amount as a decimal string, e.g. "25.00".')
    if len(text) > AMOUNT_MAX_LENGTH:
        raise InputError(f"At most {AMOUNT_MAX_LENGTH} characters.")
    pattern = _SIGNED_AMOUNT if allow_negative else _AMOUNT
    match = pattern.fullmatch(text)
    if match is None:
        shape = SIGNED_AMOUNT_PATTERN if allow_negative else AMOUNT_PATTERN
        raise InputError(f"Must be an ASCII decimal string matching {shape}.")
    decimals = len(match.group(1) or "")
    if decimals > max_decimals:
        raise InputError(f"At most {max_decimals} decimals.")
    value = Decimal(text)
    if abs(value) >= AMOUNT_LIMIT:
        raise InputError(f"Must be below {AMOUNT_LIMIT:f}.")
    if value == 0 and not allow_zero:
        raise InputError("Must be greater than zero.")
    if value < 0 and not allow_negative:
        raise InputError("Must not be negative.")
    return value


def check_amount_range(value: Decimal) -> None:
    """InputError unless a Decimal is finite with at most 20 integer digits (NUMERIC(28, 8));
    decimals are the currency's question (quantizing refuses more than it has)."""
    if not value.is_finite():
        raise InputError("Must be a finite number.")
    if abs(value) >= AMOUNT_LIMIT:
        raise InputError(f"Must be below {AMOUNT_LIMIT:f}.")


def unstorable_character(text: str) -> str | None:
    """The first character no text column can hold (NUL, a lone surrogate), or None."""
    for char in text:
        if char == "\x00" or "\ud800" <= char <= "\udfff":
            return char
    return None


def check_text(text: str) -> str:
    """Free text (names, reasons, URLs): anything storable."""
    bad = unstorable_character(text)
    if bad is not None:
        raise InputError(f"Contains a character that cannot be stored (U+{ord(bad):04X}).")
    return text


def check_identifier(text, *, max_length: int) -> str:
    """An exact identifier: a non-empty string, at most `max_length` characters, no
    whitespace at either end, no control, format, surrogate or unassigned character."""
    if not isinstance(text, str):
        raise InputError("Must be a string.")
    if not text:
        raise InputError("Must not be empty.")
    if len(text) > max_length:
        raise InputError(f"At most {max_length} characters.")
    if text != text.strip():
        raise InputError("Must not start or end with whitespace (it is not trimmed).")
    for char in text:
        if unicodedata.category(char).startswith("C"):
            raise InputError(f"Contains a control or invisible character (U+{ord(char):04X}).")
    return text


def check_country(text) -> str:
    """An ISO 3166-1 alpha-2 code, upper-cased: `mt` is MT, `ÄÖ` and `XX` are refused."""
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z]{2}", text):
        raise InputError("Use an ISO 3166-1 alpha-2 code, e.g. MT.")
    code = text.upper()
    if pycountry.countries.get(alpha_2=code) is None:
        raise InputError(f"{code} is not an ISO 3166-1 alpha-2 country code.")
    return code


def check_date(value: date, *, earliest: date = EARLIEST_DATE, latest: date | None = None) -> date:
    if value < earliest:
        raise InputError(f"Must be on or after {earliest.isoformat()}.")
    if latest is not None and value > latest:
        raise InputError(f"Must be on or before {latest.isoformat()}.")
    return value
