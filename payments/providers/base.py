"""The one interface every payment connector implements.

A connector speaks one provider's published protocol (Stripe, Adyen, Skrill, BTCPay Server
Greenfield, Berlin Group NextGenPSD2) and translates between it and our objects: it starts
payments, payouts and refunds over HTTP, verifies webhooks, parses them into `ProviderEvent`s,
fetches status for the janitor, cancels what the protocol lets it cancel, and sorts the
provider's decline codes into soft (a retry may succeed) and hard. Connectors never touch the
database: `payments.services` applies what they return, under the payment's lock.

Rules every connector keeps:
- `verify_webhook` raises `InvalidSignature` and nothing else, whatever bytes or headers it is
  given (compare with `signatures_match`, which never raises on non-ASCII input).
- An event is trusted only for what its signature covers. `ProviderEvent.dedup_key` is built
  from signed fields only (Stripe event id, Adyen pspReference + eventCode, Skrill
  transaction_id + status, BTCPay delivery id); the inbox applies each key once.
- Where a protocol's webhook carries no amounts (BTCPay, Berlin Group status notifications),
  `parse_webhook` fetches the object from the provider's API and reports what the API says.
"""

import hashlib
import hmac
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

import httpx
from django.conf import settings

from wallets.errors import DomainError
from wallets.money import currency_exponent, quantize_money

from ..instruments import instrument_fingerprint

# Normalised statuses a connector reports; services map them onto the state machines.
PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"

# What an event is about.
DEPOSIT = "deposit"
WITHDRAWAL = "withdrawal"
REFUND = "refund"
DISPUTE = "dispute"

# What a dispute event says happened to the money of a deposit.
DISPUTE_NOTIFIED = "notified"  # inquiry, retrieval request, notification of chargeback: no money
DISPUTE_CHARGEBACK = "chargeback"  # the provider took the money back
DISPUTE_REVERSED = "reversed"  # the provider gave it back (dispute won, chargeback reversed)
DISPUTE_LOST = "lost"  # closed in the cardholder's favour: no further money moves


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


class MalformedWebhook(ValueError):
    """A verified webhook we cannot make sense of (unknown event type, missing field)."""


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
    # The currency of `amount_received`, when the provider states it: a success in another
    # currency than the deposit's is never credited (services hold it for review).
    currency: str = ""
    is_late: bool = False
    # PENDING because the payer has paid and the provider waits for confirmations (crypto): the
    # janitor never expires such a payment, the player paid in time.
    is_awaiting_confirmation: bool = False
    decline_code: str = ""
    decline_kind: str = ""
    # Only deposits carry these, and only when the provider says who paid.
    payer_instrument: PayerInstrument | None = None
    payer_name: str = ""


@dataclass(frozen=True)
class DisputeInfo:
    """A dispute or chargeback on a deposit, as the provider reports it."""

    action: str  # one of the DISPUTE_* actions
    # The provider's id of the dispute (Stripe dispute id, Adyen chargeback pspReference …);
    # one chargeback per dispute reference is ever booked.
    dispute_reference: str
    amount: Decimal | None = None  # None: the whole deposit
    currency: str = ""
    reason_code: str = ""
    reason: str = ""
    due_by: datetime | None = None


@dataclass(frozen=True)
class ProviderEvent:
    """One verified, parsed provider event. A delivery may carry several (Adyen batches).

    The payment is found by `reference` (ours, echoed by the provider) or, when the provider
    only names its own object (a Stripe dispute names the PaymentIntent), by
    `provider_reference`."""

    subject: str  # DEPOSIT, WITHDRAWAL, REFUND or DISPUTE (disputes are on deposits)
    event_type: str  # the provider's own name, e.g. "payment_intent.succeeded"
    dedup_key: str  # from signed fields only; the inbox applies each key once
    reference: str = ""
    provider_reference: str = ""
    result: ProviderResult | None = None  # DEPOSIT, WITHDRAWAL, REFUND
    dispute: DisputeInfo | None = None  # DISPUTE


@dataclass(frozen=True)
class WebhookAck:
    """What the provider expects back for a delivery it must not resend."""

    status: int = 200
    body: bytes = b'{"received":true}'
    content_type: str = "application/json"


_clients: dict[tuple, httpx.Client] = {}
_clients_lock = threading.Lock()


def provider_secret(provider, name: str) -> str:
    """`PAYMENTS_<CODE>_<NAME>` from the environment, else what the provider row stores: the
    `api_key` or `webhook_secret` column, or a secret key of `options` (`SECRET_OPTIONS`:
    `webhook_password`, `tpp_signing_key`). The row holds them encrypted; the model decrypts
    on load, so this returns the clear value, "" when nothing is set — and "" when the stored
    token opens with none of the configured keys (logged by the model): every check that needs
    the secret then fails closed. Asking for a name that is not a provider secret is a bug."""
    attribute = name.lower()
    if attribute not in provider.SECRET_NAMES:
        raise ValueError(f"{name!r} is not a payment provider secret")
    env_name = f"PAYMENTS_{provider.code.upper().replace('-', '_')}_{attribute.upper()}"
    if from_env := os.environ.get(env_name):
        return from_env
    if attribute in provider.SECRET_OPTIONS:
        stored = (provider.options or {}).get(attribute, "")
    else:
        stored = getattr(provider, attribute)
    return str(stored) if isinstance(stored, str) else ""


def hmac_sha256(secret: str | bytes, message: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signatures_match(expected: str, received) -> bool:
    """Constant-time comparison that never raises: a non-ASCII or non-string signature from
    the wire simply does not match (`hmac.compare_digest` raises TypeError on non-ASCII str)."""
    if not isinstance(received, str):
        return False
    return hmac.compare_digest(expected.encode(), received.encode("utf-8", "surrogateescape"))


def money(amount: Decimal, currency: str) -> str:
    """Amounts go to providers as decimal strings at the currency's exponent, never floats."""
    return f"{quantize_money(amount, currency):f}"


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Stripe and Adyen carry amounts as integers in the currency's minor unit."""
    return int(quantize_money(amount, currency).scaleb(currency_exponent(currency)))


def from_minor_units(value, currency: str) -> Decimal:
    """An integer amount in minor units from a provider; anything else is malformed."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedWebhook(f"amount {value!r} is not an integer in minor units")
    return Decimal(value).scaleb(-currency_exponent(currency))


_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def parse_decimal(value) -> Decimal:
    """A decimal string from a provider ("12.50"); floats, exponents and junk are malformed."""
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise MalformedWebhook(f"amount {value!r} is not a decimal string")
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise MalformedWebhook(f"amount {value!r} is not a decimal string") from exc


class PaymentAdapter:
    """Base of every connector. Subclasses set `protocol`, `soft_declines`, and implement the
    calls their protocol offers; a call the protocol does not offer raises NotImplementedError
    (`supports_*` say which)."""

    protocol: str = ""
    # Content types a webhook delivery may have (the endpoint refuses others with 415).
    webhook_content_types: tuple[str, ...] = ("application/json",)
    # Provider decline code → soft or hard. Unknown codes are hard: retrying a decline we do
    # not understand risks duplicate charges and issuer penalties.
    soft_declines: frozenset[str] = frozenset()
    supports_payouts = True
    supports_cancel = True

    def __init__(self, provider):
        self.provider = provider
        self.api_key = provider_secret(provider, "api_key")
        self.webhook_secret = provider_secret(provider, "webhook_secret")

    # --- outgoing calls ----------------------------------------------------------------------

    def start_payment(
        self, *, deposit, notify_url: str, return_url: str, payment_method: dict | None = None
    ) -> ProviderResult:
        """`payment_method` is what the casino's front end collected with the provider's own
        components (Stripe.js PaymentMethod id, Adyen Drop-in's encrypted card fields) and
        passed through our API untouched: never stored or logged. Each connector documents
        the shape it takes; protocols with a hosted page ignore it."""
        raise NotImplementedError

    def submit_payment_details(self, *, deposit, details: dict) -> ProviderResult | None:
        """The player came back from the provider's redirect (3-D Secure, bank consent) with
        `details` (query parameters of the return URL). Adyen requires them to be submitted
        (`/payments/details`); elsewhere the return carries nothing to trust, so this asks the
        provider for the payment's status."""
        return self.fetch_payment_status(deposit=deposit)

    def start_payout(self, *, withdrawal, notify_url: str) -> ProviderResult:
        raise NotImplementedError

    def refund(self, *, refund, notify_url: str) -> ProviderResult:
        raise NotImplementedError

    def cancel_payment(self, *, deposit) -> ProviderResult | None:
        """Stop an open payment at the provider so it can no longer be paid (the janitor calls
        it for an expired deposit). Returns what the provider says the payment now is — it may
        already have succeeded — or None when the provider has never heard of it."""
        raise NotImplementedError

    def fetch_payment_status(self, *, deposit) -> ProviderResult | None:
        """None when the provider has never heard of the payment."""
        raise NotImplementedError

    def fetch_payout_status(self, *, withdrawal) -> ProviderResult | None:
        raise NotImplementedError

    def fetch_refund_status(self, *, refund) -> ProviderResult | None:
        raise NotImplementedError

    # --- webhooks ----------------------------------------------------------------------------

    def verify_webhook(self, *, body: bytes, headers: dict[str, str]) -> None:
        """Raise InvalidSignature unless the delivery was signed with our secret. `headers` has
        lower-case names. Never raises anything else, whatever the input."""
        raise NotImplementedError

    def parse_webhook(self, *, body: bytes, headers: dict[str, str]) -> list[ProviderEvent]:
        """Only called on a verified body, in a worker. Raises MalformedWebhook on a body it
        cannot read; may call the provider's API (ProviderTimeout / ProviderUnavailable then
        leave the delivery for the sweeper to retry)."""
        raise NotImplementedError

    def webhook_ack(self) -> WebhookAck:
        return WebhookAck()

    # --- helpers -------------------------------------------------------------------------------

    def decline_kind(self, code: str) -> str:
        if not code:
            return ""
        return "soft" if code in self.soft_declines else "hard"

    def _client(self, base_url: str | None = None) -> httpx.Client:
        """One pooled client per provider URL and process: building a client loads the CA
        bundle (~15 ms) and a fresh client cannot reuse connections."""
        base_url = base_url or self.provider.api_base_url
        # Mutual TLS where the provider asks for it (a PSD2 bank wants the TPP's eIDAS QWAC):
        # paths to the PEM certificate and key, from the provider's options.
        options = self.provider.options or {}
        cert = options.get("tls_client_certificate_file") or None
        if cert and options.get("tls_client_key_file"):
            cert = (cert, options["tls_client_key_file"])
        key = (
            base_url,
            settings.PAYMENTS_PROVIDER_TIMEOUT_SECONDS,
            settings.PAYMENTS_PROVIDER_CONNECT_TIMEOUT_SECONDS,
            cert,
        )
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = httpx.Client(
                    base_url=base_url.rstrip("/") + "/",
                    timeout=httpx.Timeout(key[1], connect=key[2]),
                    cert=cert,
                )
        return client

    def _request(
        self, method: str, path: str, *, base_url: str | None = None, **kwargs
    ) -> httpx.Response:
        """One HTTP call. A 4xx comes back to the connector (it carries declines). A failed
        connection means the request never left (ProviderUnavailable); a timeout, a broken
        read or a 5xx leaves the outcome unknown (ProviderTimeout)."""
        try:
            response = self._client(base_url).request(method, path, **kwargs)
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
