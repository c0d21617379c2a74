"""The one rotatable cipher for secrets the server must read back (provider API keys, webhook
secrets, signing keys): Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under the keys
in `GAME_PROVIDER_SECRET_KEYS`, newest first, through `MultiFernet`: the newest key encrypts,
every listed key decrypts. Rotating the encryption key is: prepend a new key, restart, run
`manage.py reencrypt_secrets` (re-encrypts every stored ciphertext under the newest key), then
drop the old key. Without the setting a key is derived from SECRET_KEY (the demo).

Also the model fields that keep a column encrypted at rest while the attribute holds the clear
value in memory: `EncryptedTextField` (a whole column) and `EncryptedKeysJSONField` (named
keys of a JSON object). Callers read and write clear text; the database only ever sees tokens.

This module sits below the ledger (no import of wallets' services or of any higher app).
"""

import base64
import functools
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

logger = logging.getLogger(__name__)


def cipher() -> MultiFernet:
    """The cipher of the current settings (cached per key list)."""
    return cipher_for(tuple(current_keys()))


def current_keys() -> list[bytes]:
    keys = [k.encode() if isinstance(k, str) else k for k in settings.GAME_PROVIDER_SECRET_KEYS]
    if not keys:
        # The demo has no key configured: derive one from SECRET_KEY, so rotating SECRET_KEY
        # there makes stored secrets unreadable (production sets its own keys). The HKDF info
        # is the one game-provider secrets were first encrypted with: they must still decrypt.
        keys = [derived_key(settings.SECRET_KEY)]
    return keys


@functools.lru_cache(maxsize=8)
def derived_key(secret_key: str) -> bytes:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"wallets.game-provider-secret"
    ).derive(secret_key.encode())
    return base64.urlsafe_b64encode(derived)


# Keyed by the key material itself, so changed settings (a test override, a key rotation on
# restart) build a new cipher; building one is not free and signed calls need one each.
@functools.lru_cache(maxsize=8)
def cipher_for(keys: tuple) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    return cipher().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Raises `cryptography.fernet.InvalidToken` when no configured key opens the token."""
    return cipher().decrypt(token.encode()).decode()


def is_current(token: str) -> bool:
    """True when the newest key alone opens `token` (it needs no older key any more)."""
    try:
        Fernet(current_keys()[0]).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


class UnreadableSecret(str):
    """A stored secret no configured key opens (a key was dropped too early, or SECRET_KEY
    changed in the demo). It reads as an empty secret, so every check that needs the secret
    fails closed, and saving the row writes the original token back unchanged: fixing the key
    list recovers it."""

    ciphertext: str

    def __new__(cls, ciphertext: str):
        value = super().__new__(cls, "")
        value.ciphertext = ciphertext
        return value


def open_or_unreadable(token: str, where: str) -> str:
    try:
        return decrypt(token)
    except InvalidToken:
        logger.error("secret_box: %s cannot be decrypted with the configured keys", where)
        return UnreadableSecret(token)


def _seal(value: str) -> str:
    if isinstance(value, UnreadableSecret):
        return value.ciphertext
    return encrypt(value)


def _is_secret_value(value) -> bool:
    return isinstance(value, UnreadableSecret) or (isinstance(value, str) and bool(value))


class EncryptedTextField(models.TextField):
    """A text column stored as a Fernet token; the model attribute is the clear text. An
    empty value is stored empty (nothing to hide, and "not set" stays visible). Lookups other
    than emptiness are meaningless on it (every encryption differs)."""

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        return open_or_unreadable(value, f"{self.model._meta.label}.{self.name}")

    def get_prep_value(self, value):
        if isinstance(value, UnreadableSecret):
            return value.ciphertext
        value = super().get_prep_value(value)
        if not value:
            return value
        return _seal(value)


class EncryptedKeysJSONField(models.JSONField):
    """A JSON object whose values under `secret_keys` are stored as Fernet tokens; everything
    else is stored as it is. The model attribute holds the clear object."""

    def __init__(self, *args, secret_keys=(), **kwargs):
        self.secret_keys = tuple(secret_keys)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["secret_keys"] = self.secret_keys
        return name, path, args, kwargs

    def from_db_value(self, value, expression, connection):
        value = super().from_db_value(value, expression, connection)
        if not isinstance(value, dict) or not self._is_whole_column(expression):
            return value
        return self.open_keys(value)

    def _holds_token(self, key, value) -> bool:
        return key in self.secret_keys and isinstance(value, str) and bool(value)

    def open_keys(self, stored: dict) -> dict:
        """`stored` (a dict as the column holds it) with its secret keys decrypted."""
        label = f"{self.model._meta.label}.{self.name}"
        return {
            k: open_or_unreadable(v, f"{label}[{k}]") if self._holds_token(k, v) else v
            for k, v in stored.items()
        }

    def get_prep_value(self, value):
        if isinstance(value, dict):
            value = {
                k: _seal(v) if k in self.secret_keys and _is_secret_value(v) else v
                for k, v in value.items()
            }
        return super().get_prep_value(value)

    def _is_whole_column(self, expression) -> bool:
        # A key transform (options__webhook_password) reads one value, not the object.
        return getattr(expression, "target", None) is self or expression is None


def encrypted_fields(model) -> list[models.Field]:
    return [
        f
        for f in model._meta.concrete_fields
        if isinstance(f, EncryptedTextField | EncryptedKeysJSONField)
    ]
