"""The one interface every payment provider adapter implements.

An adapter translates between our objects and one provider's API: it starts payments, payouts
and refunds over HTTP, verifies and parses webhooks into a `ProviderEvent`, fetches status
for the janitor, and sorts the provider's decline codes into soft (retry may succeed) and
hard. Adapters never touch the database: `payments.services` applies what they return.
"""

import hashlib
import hmac
import os
import threading
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
from django.conf import settings

from wallets.errors import DomainError
from wallets.services import quantize_money

from ..instruments import instrument_fingerprint

# Normalised statuses an adapter reports; services map them onto the state machines.
PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"
# The provider pulled back a settled payment (a dispute the cardholder won).
CHARGEBACK = "chargeback"

DEPOSIT = "deposit"
WITHDRAWAL = "withdrawal"
REFUND = "refund"


class ProviderUnavailable(DomainError):
    """The payment provider could not be reached: the request was never sent."""

    code = "provider_unavailable"
    http_status = 502


class ProviderTimeout(DomainError):
    """The provider did not answer in time or answered with a server error: the outcome is
    unknown until it is polled, so nothing may be treated as failed yet."""

    code = "provider_timeout"
    http_status = 504


class InvalidSignature(Exception):
    """A webhook whose signature, timestamp or format does not check out."""


@dataclass(frozen=True)
class PayerInstrument:
    """The instrument a player paid from, as a fingerprint: compliance links players who
    share one. `type` is card, ewallet or iban (see `instruments.instrument_fingerprint`)."""

    type: str
    fingerprint: str

    @classmethod
    def of(cls, kind: str, identifier) -> "PayerInstrument | None":
        if not isinstance(identifier, str) or not identifier.strip():
            return None
        return cls(type=kind, fingerprint=instrument_fingerprint(kind, identifier))


@dataclass(frozen=True)
class ProviderResult:
    """What a provider said about one payment, payout or refund, in our vocabulary."""

    status: str
    provider_reference: str = ""
    redirect_url: str = ""
    instructions: dict = field(default_factory=dict)
    amount_received: Decimal | None = None
    is_late: bool = False
    decline_code: str = ""
    decline_kind: str = ""
    # Only deposits carry it, and only when the provider says who paid.
    payer_instrument: PayerInstrument | None = None


@dataclass(frozen=True)
class ProviderEvent:
    """A verified webhook, parsed. `reference` is ours (the provider echoes it)."""

    subject: str
    reference: str
    event_type: str
    result: ProviderResult


_clients: dict[tuple, httpx.Client] = {}
_clients_lock = threading.Lock()


def provider_secret(provider, name: str) -> str:
    """`PAYMENTS_<CODE>_<NAME>` from the environment, else the provider's database column."""
    env_name = f"PAYMENTS_{provider.code.upper().replace('-', '_')}_{name.upper()}"
    return os.environ.get(env_name) or getattr(provider, name.lower())


def hmac_sha256(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class PaymentAdapter:
    kind: str = ""
    # Provider decline code → soft or hard. Unknown codes are hard: retrying a decline we do
    # not understand risks duplicate charges and issuer penalties.
    soft_declines: frozenset[str] = frozenset()

    def __init__(self, provider):
        self.provider = provider
        self.api_key = provider_secret(provider, "api_key")
        self.webhook_secret = provider_secret(provider, "webhook_secret")

    # --- outgoing calls ----------------------------------------------------------------------

    def start_payment(self, *, deposit, notify_url: str, return_url: str) -> ProviderResult:
        raise NotImplementedError

    def start_payout(self, *, withdrawal, notify_url: str) -> ProviderResult:
        raise NotImplementedError

    def refund(self, *, refund, notify_url: str) -> ProviderResult:
        raise NotImplementedError

    def fetch_payment_status(self, *, deposit) -> ProviderResult | None:
        """None when the provider has never heard of the payment."""
        raise NotImplementedError

    def fetch_payout_status(self, *, withdrawal) -> ProviderResult | None:
        raise NotImplementedError

    def fetch_refund_status(self, *, refund) -> ProviderResult | None:
        raise NotImplementedError

    # --- webhooks ----------------------------------------------------------------------------

    def verify_webhook(self, *, body: bytes, headers: dict) -> None:
        """Raise InvalidSignature unless the webhook was signed with our secret."""
        raise NotImplementedError

    def parse_webhook(self, *, body: bytes, headers: dict) -> ProviderEvent:
        """Only called on a verified body. Raises ValueError on a malformed one."""
        raise NotImplementedError

    # --- helpers -------------------------------------------------------------------------------

    def decline_kind(self, code: str) -> str:
        if not code:
            return ""
        return "soft" if code in self.soft_declines else "hard"

    def _client(self) -> httpx.Client:
        """One pooled client per provider URL and process: building a client loads the CA
        bundle (~15 ms) and a fresh client cannot reuse connections."""
        key = (
            self.provider.api_base_url,
            settings.PAYMENTS_PROVIDER_TIMEOUT_SECONDS,
            settings.PAYMENTS_PROVIDER_CONNECT_TIMEOUT_SECONDS,
        )
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = httpx.Client(
                    base_url=self.provider.api_base_url.rstrip("/") + "/",
                    timeout=httpx.Timeout(key[1], connect=key[2]),
                )
        return client

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One HTTP call. A 4xx comes back to the adapter (it carries declines). A failed
        connection means the request never left (ProviderUnavailable); a timeout, a broken
        read or a 5xx leaves the outcome unknown (ProviderTimeout)."""
        try:
            response = self._client().request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ProviderUnavailable(
                f"{self.provider.code} unreachable: {exc}", provider=self.provider.code
            ) from exc
        except httpx.HTTPError as exc:
            raise ProviderTimeout(
                f"{self.provider.code} did not answer: {type(exc).__name__}.",
                provider=self.provider.code,
            ) from exc
        if response.status_code >= 500:
            raise ProviderTimeout(
                f"{self.provider.code} answered {response.status_code}.",
                provider=self.provider.code,
                status=response.status_code,
            )
        return response

    def _json(self, response: httpx.Response):
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderTimeout(
                f"{self.provider.code} answered {response.status_code} with a body that is "
                "not JSON.",
                provider=self.provider.code,
            ) from exc


def money(amount: Decimal, currency: str) -> str:
    """Amounts go to providers as decimal strings at the currency's exponent, never floats."""
    return str(quantize_money(amount, currency))
