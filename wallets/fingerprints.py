"""Keyed, versioned fingerprints of payment instruments (IBANs, cards, wallet accounts, crypto
addresses): the ledger, payments and compliance group players by them, never by the raw
identifier, and without the key nobody can test a guessed IBAN against a stored fingerprint.

    v0   SHA-256("<kind>:<identifier>")                 (the unkeyed hash of old rows; no prefix)
    vN   HMAC-SHA256(key N, "instrument-fingerprint:vN:" + the vN-1 digest)   → "vN:<hex>"

Each version wraps the one before, so a stored fingerprint of any older version is upgraded to
the current one with the keys alone — the identifier is not needed, which matters because
most fingerprints (a deposit's payer) are all we ever keep of the instrument. That is how
grouping survives a key rotation:
- add key N+1 to INSTRUMENT_FINGERPRINT_KEYS, keeping every older key (each is one layer);
- new fingerprints are vN+1 at once; readers upgrade what they read (`upgrade`), so a vN in
  an append-only ledger entry still meets its vN+1 twin;
- `manage.py refingerprint_instruments` rewrites the stored, mutable rows (deposits,
  compliance's instrument index, shared-instrument alerts) to vN+1.
A leaked key N alone no longer lets anyone test guesses against the rewritten rows: they need
key N+1 as well.

Below every app (no import of the ledger's services or of a higher app): compliance reads
fingerprints from ledger metadata and may not import payments.
"""

import base64
import functools
import hashlib
import hmac
import re

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_VERSIONED = re.compile(r"v([1-9][0-9]{0,3}):([0-9a-f]{64})")
_LEGACY = re.compile(r"[0-9a-f]{64}")


def keys() -> tuple[bytes, ...]:
    """Key of version 1, 2, … in order (index 0 is version 1)."""
    return _parse(tuple(settings.INSTRUMENT_FINGERPRINT_KEYS), settings.SECRET_KEY)


@functools.lru_cache(maxsize=8)
def _parse(entries: tuple, secret_key: str) -> tuple[bytes, ...]:
    if not entries:
        # The demo: one key derived from SECRET_KEY. Production sets its own (changing
        # SECRET_KEY must not silently split every group in two).
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"payments.instrument-fingerprint",
        ).derive(secret_key.encode())
        return (base64.urlsafe_b64encode(derived),)
    by_version: dict[int, bytes] = {}
    for entry in entries:
        version, sep, key = str(entry).partition(":")
        if not sep or not version.isdigit() or len(key) < 32:
            raise ImproperlyConfigured(
                "INSTRUMENT_FINGERPRINT_KEYS entries are <version>:<key of 32+ characters>."
            )
        by_version[int(version)] = key.encode()
    if sorted(by_version) != list(range(1, len(by_version) + 1)):
        raise ImproperlyConfigured(
            "INSTRUMENT_FINGERPRINT_KEYS must hold every version from 1 up: each version wraps "
            "the one before, so an old key can never be dropped."
        )
    return tuple(by_version[v] for v in range(1, len(by_version) + 1))


def current_version() -> int:
    return len(keys())


def _wrap(digest: bytes, version: int, upto: tuple[bytes, ...]) -> str:
    for step in range(version + 1, len(upto) + 1):
        message = f"instrument-fingerprint:v{step}:".encode() + digest
        digest = hmac.new(upto[step - 1], message, hashlib.sha256).digest()
    return f"v{len(upto)}:{digest.hex()}"


def fingerprint(kind: str, canonical_identifier: str) -> str:
    """The current-version fingerprint of an identifier already in its canonical form."""
    legacy = hashlib.sha256(f"{kind}:{canonical_identifier}".encode()).digest()
    return _wrap(legacy, 0, keys())


def version_of(value: str) -> int | None:
    """0 for an unkeyed legacy hash, N for "vN:…", None for anything that is not ours."""
    if match := _VERSIONED.fullmatch(value):
        return int(match.group(1))
    if _LEGACY.fullmatch(value):
        return 0
    return None


def upgrade(value: str) -> str:
    """The current-version form of a stored fingerprint. Values that are not ours (empty,
    another format) and versions newer than our keys (a rolling deploy) come back as they are."""
    return _upgrade(value, keys())


@functools.lru_cache(maxsize=4096)
def _upgrade(value: str, upto: tuple[bytes, ...]) -> str:
    version = version_of(value)
    if version is None or version >= len(upto):
        return value
    digest = bytes.fromhex(value.split(":", 1)[-1])
    return _wrap(digest, version, upto)


def is_current(value: str) -> bool:
    version = version_of(value)
    return version is None or version >= current_version()
