"""Stripe: PaymentIntents, Refunds and Payouts over Stripe's v1 REST API, webhooks as Stripe
`Event` objects signed with `Stripe-Signature`.

Protocol as published at https://docs.stripe.com/api (API version pinned by `STRIPE_VERSION`,
the version the official `stripe` Python SDK 16.1.0 is generated for; an operator may pin
another with `provider.options["stripe_version"]`, and must then set the webhook endpoint to
the same version so events carry the same shapes):

- requests are form-encoded with Stripe's bracket notation (`metadata[reference]=…`), sent with
  `Authorization: Bearer <secret key>`, a pinned `Stripe-Version` and, on every POST, our own
  reference as `Idempotency-Key` (Stripe replays the first answer to a retried request);
- answers are JSON objects; errors are `{"error": {"type", "code", "decline_code", "message",
  "param", …}}`, a card decline at confirmation being HTTP 402 with the PaymentIntent inside;
- webhooks are `Event` objects (`object: "event"`, `type`, `data.object`) signed as
  `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(whsec_ secret, "<t>.<raw body>")>`
  (https://docs.stripe.com/webhooks#verify-manually): one or more `v1` (Stripe signs with the
  old and the new secret while a secret is rolled), other schemes ignored, deliveries older
  than 300 s refused as the official libraries do.

Soft and hard declines follow Stripe's decline code table, https://docs.stripe.com/declines/codes
("Next steps" column), and the advice codes of https://docs.stripe.com/declines/card#retrying-issuer-declines:
- soft, where Stripe's next step is to attempt the payment again: `approve_with_id`,
  `issuer_not_available`, `processing_error`, `reenter_transaction`, `try_again_later`, and
  `authentication_required` (again, with 3-D Secure);
- hard, everything else: the next step is the customer contacting the issuer (`do_not_honor`,
  `generic_decline`, `call_issuer`, `card_velocity_exceeded` …), correcting the card data
  (`incorrect_cvc`, `expired_card` …), using another payment method (`insufficient_funds`,
  `card_not_supported`, `currency_not_supported`), or never retrying (`lost_card`,
  `stolen_card`, `pickup_card`, `fraudulent`, `do_not_try_again`); unknown codes are hard;
- an issuer's `advice_code` wins over the table: `try_again_later` makes a decline soft,
  `do_not_try_again` and `confirm_card_data` make it hard.
Payout failures (https://docs.stripe.com/api/payouts/failures): `could_not_process` and
`insufficient_funds` (our Stripe balance) are soft; the others name a destination that will
not take the money and are hard.

Webhook events, and what `parse_webhook` returns for them:
- `payment_intent.*` → one DEPOSIT event, status from the PaymentIntent (a success fetches the
  latest charge for the card fingerprint and billing name);
- `refund.created|updated|failed`, `charge.refund.updated` → one REFUND event (the Refund
  carries our `metadata[reference]`); `charge.refunded` → an empty list: the Charge names no
  refund of ours, the refund events that always accompany it do;
- `payout.*` → one WITHDRAWAL event;
- `charge.dispute.*` → one DISPUTE event; inquiries (`warning_*`) and anything that moves no
  money are NOTIFIED;
- any other type → an empty list (acknowledged, nothing applied).
`dedup_key` is the event id, inside the signed body.
"""

import json
import logging
import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import quote, urlencode

from wallets.errors import DomainError

from .base import (
    CANCELLED,
    DEPOSIT,
    DISPUTE,
    DISPUTE_CHARGEBACK,
    DISPUTE_LOST,
    DISPUTE_NOTIFIED,
    DISPUTE_REVERSED,
    FAILED,
    PENDING,
    REFUND,
    SUCCEEDED,
    WITHDRAWAL,
    DisputeInfo,
    InvalidSignature,
    MalformedWebhook,
    PayerInstrument,
    PaymentAdapter,
    ProviderEvent,
    ProviderResult,
    ProviderTimeout,
    ProviderUnavailable,
    from_minor_units,
    hmac_sha256,
    signatures_match,
    to_minor_units,
)

log = logging.getLogger(__name__)

# The API version the official SDK 16.1.0 is generated for (stripe/_api_version.py).
STRIPE_VERSION = "2026-10-28.endive"
SIGNATURE_HEADER = "stripe-signature"
TOLERANCE_SECONDS = 300
# A real header carries one timestamp and one to three signatures; more is not Stripe's.
_MAX_SIGNATURE_ITEMS = 16
_TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)

# PaymentIntent statuses (https://docs.stripe.com/payments/paymentintents/lifecycle). Money is
# ours only at `succeeded`; `requires_capture` is an authorisation, not a payment (we create
# intents with automatic capture, so it is only ever transient). `requires_payment_method`
# is a failure when it carries `last_payment_error`, else an intent still waiting for a card.
_INTENT_STATUSES = {
    "requires_payment_method": PENDING,
    "requires_confirmation": PENDING,
    "requires_action": PENDING,
    "processing": PENDING,
    "requires_capture": PENDING,
    "succeeded": SUCCEEDED,
    "canceled": CANCELLED,
}
# Refund statuses (https://docs.stripe.com/api/refunds/object#refund_object-status).
_REFUND_STATUSES = {
    "pending": PENDING,
    "requires_action": PENDING,
    "succeeded": SUCCEEDED,
    "failed": FAILED,
    "canceled": FAILED,
}
# Payout statuses (https://docs.stripe.com/api/payouts/object#payout_object-status).
_PAYOUT_STATUSES = {
    "pending": PENDING,
    "in_transit": PENDING,
    "paid": SUCCEEDED,
    "failed": FAILED,
    "canceled": CANCELLED,
}
# What `data.object` must be for the events we act on.
_EVENT_OBJECTS = {
    "payment_intent.": "payment_intent",
    "charge.dispute.": "dispute",
    "refund.": "refund",
    "charge.refund.": "refund",
    "payout.": "payout",
}
_SOFT_PAYOUT_FAILURES = frozenset({"could_not_process", "insufficient_funds"})

# Dispute statuses (https://docs.stripe.com/disputes/how-disputes-work). An inquiry
# (`warning_*`) takes no money; a dispute does, when it is opened (`funds_withdrawn`).
_INQUIRY_STATUSES = frozenset({"warning_needs_response", "warning_under_review", "warning_closed"})
_OPEN_DISPUTE_STATUSES = frozenset({"needs_response", "under_review"})

# Stripe's zero-decimal currencies (https://docs.stripe.com/currencies#zero-decimal): their
# amounts are whole units, so our exponent must be 0 for them too.
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA"}
    | {"PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """A `Stripe-Signature` header value for `body` (as Stripe computes it)."""
    return f"t={timestamp},v1={hmac_sha256(secret, f'{timestamp}.'.encode() + body)}"


def encode_form(params: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: nested dicts as `a[b][c]`, lists as `a[0]`, booleans as
    `true`/`false`, None left out."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, dict):
            pairs.extend(encode_form(value, name))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    pairs.extend(encode_form(item, f"{name}[{index}]"))
                else:
                    pairs.append((f"{name}[{index}]", _form_value(item)))
        else:
            pairs.append((name, _form_value(value)))
    return pairs


def _form_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class StripeConnector(PaymentAdapter):
    protocol = "stripe"
    webhook_content_types = ("application/json",)
    soft_declines = frozenset(
        {
            "approve_with_id",
            "authentication_required",
            "issuer_not_available",
            "processing_error",
            "reenter_transaction",
            "try_again_later",
        }
    )
    supports_payouts = True
    supports_cancel = True

    # --- HTTP ------------------------------------------------------------------------------

    @property
    def stripe_version(self) -> str:
        return str(self.provider.options.get("stripe_version") or STRIPE_VERSION)

    def _headers(self, idempotency_key: str = "") -> dict:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Stripe-Version": self.stripe_version,
            "Accept": "application/json",
        }
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        # Connect: act on a connected account's behalf (payouts to a player's own account).
        if account := self.provider.options.get("stripe_account"):
            headers["Stripe-Account"] = str(account)
        return headers

    def _post(self, path: str, params: dict, *, idempotency_key: str):
        headers = {
            **self._headers(idempotency_key),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        response = self._request(
            "POST", path, headers=headers, content=urlencode(encode_form(params)).encode()
        )
        return response.status_code, self._json(response)

    def _get(self, path: str, params: dict | None = None):
        query = encode_form(params or {})
        response = self._request("GET", path, headers=self._headers(), params=query)
        return response.status_code, self._json(response)

    def _refuse(self, status: int, body) -> None:
        """Answers that mean the request was not processed at all: wrong key, no permission,
        rate limited (Stripe processes none of these), or an idempotent request still running
        (the outcome is unknown)."""
        message = _error(body).get("message", "")
        if status in (401, 403, 429):
            raise ProviderUnavailable(
                f"{self.provider.code} refused the request ({status}): {message}",
                provider=self.provider.code,
                status=status,
            )
        if status == 409:
            raise ProviderTimeout(
                f"{self.provider.code} is still processing this request: {message}",
                provider=self.provider.code,
                status=status,
            )

    def _object_or_none(self, status: int, body) -> dict | None:
        """A retrieved object; None when Stripe has never heard of it (404)."""
        if status == 404:
            return None
        self._refuse(status, body)
        if status != 200 or not isinstance(body, dict):
            raise ProviderTimeout(
                f"{self.provider.code} answered {status} to a retrieve.",
                provider=self.provider.code,
                status=status,
            )
        return body

    # --- amounts -------------------------------------------------------------------------------

    def _minor(self, amount: Decimal, currency: str) -> int:
        if currency in ZERO_DECIMAL and to_minor_units(Decimal(1), currency) != 1:
            raise ValueError(f"Stripe takes {currency} in whole units; our exponent disagrees.")
        return to_minor_units(amount, currency)

    @staticmethod
    def _currency(obj: dict) -> str:
        currency = obj.get("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[a-z]{3}", currency):
            raise MalformedWebhook(f"currency {currency!r} is not a lower-case ISO code")
        return currency.upper()

    def _amount(self, value, currency: str) -> Decimal:
        try:
            return from_minor_units(value, currency)
        except DomainError as exc:  # a currency we do not know
            raise MalformedWebhook(str(exc)) from exc

    # --- results ---------------------------------------------------------------------------

    def _decline(self, error: dict) -> tuple[str, str]:
        """(code, soft|hard) of a `last_payment_error` or API error."""
        code = str(error.get("decline_code") or error.get("code") or error.get("type") or "")
        if not code:
            return "", ""
        advice = error.get("advice_code")
        if advice == "try_again_later":
            return code, "soft"
        if advice in ("do_not_try_again", "confirm_card_data"):
            return code, "hard"
        return code, self.decline_kind(code)

    def _intent_result(self, intent: dict, *, error: dict | None = None) -> ProviderResult:
        status = _INTENT_STATUSES.get(intent.get("status"), PENDING)
        last_error = error or intent.get("last_payment_error")
        decline_code = decline_kind = ""
        if intent.get("status") == "requires_payment_method" and isinstance(last_error, dict):
            status = FAILED
            decline_code, decline_kind = self._decline(last_error)
        redirect_url = ""
        next_action = intent.get("next_action")
        if isinstance(next_action, dict) and next_action.get("type") == "redirect_to_url":
            redirect = next_action.get("redirect_to_url")
            if isinstance(redirect, dict) and isinstance(redirect.get("url"), str):
                redirect_url = redirect["url"]
        amount_received, currency = None, ""
        if status == SUCCEEDED:
            currency = self._currency(intent)
            amount_received = self._amount(intent.get("amount_received"), currency)
        charge = intent.get("latest_charge")
        payer, payer_name = self._payer(charge if isinstance(charge, dict) else None)
        return ProviderResult(
            status=status,
            provider_reference=str(intent.get("id") or ""),
            redirect_url=redirect_url if status == PENDING else "",
            amount_received=amount_received,
            currency=currency,
            decline_code=decline_code,
            decline_kind=decline_kind,
            payer_instrument=payer,
            payer_name=payer_name,
        )

    @staticmethod
    def _payer(charge: dict | None) -> tuple[PayerInstrument | None, str]:
        """The card fingerprint (the same card gives the same value across the account's
        customers, without the card number reaching us) and the billing name."""
        if not charge:
            return None, ""
        details = charge.get("payment_method_details")
        card = details.get("card") if isinstance(details, dict) else None
        fingerprint = card.get("fingerprint") if isinstance(card, dict) else None
        billing = charge.get("billing_details")
        name = billing.get("name") if isinstance(billing, dict) else None
        return PayerInstrument.of("card", fingerprint), name.strip() if isinstance(
            name, str
        ) else ""

    def _refund_result(self, refund: dict) -> ProviderResult:
        status = _REFUND_STATUSES.get(refund.get("status"), PENDING)
        code = str(refund.get("failure_reason") or "") if status == FAILED else ""
        return ProviderResult(
            status=status,
            provider_reference=str(refund.get("id") or ""),
            decline_code=code,
            decline_kind="hard" if code else "",
        )

    def _payout_result(self, payout: dict) -> ProviderResult:
        status = _PAYOUT_STATUSES.get(payout.get("status"), PENDING)
        code = ""
        if status in (FAILED, CANCELLED):
            code = str(payout.get("failure_code") or payout.get("status") or "")
        return ProviderResult(
            status=status,
            provider_reference=str(payout.get("id") or ""),
            decline_code=code,
            decline_kind=("soft" if code in _SOFT_PAYOUT_FAILURES else "hard") if code else "",
        )

    def _request_failed(self, status: int, body) -> ProviderResult:
        """A 4xx to a create that made nothing (bad parameter, amount too small …): the
        payment cannot succeed as asked, so it fails with Stripe's error code (hard unless a
        402 card error says otherwise)."""
        self._refuse(status, body)
        code, kind = self._decline(_error(body))
        log.warning(
            "%s refused a request (%s): %s",
            self.provider.code,
            status,
            _error(body).get("message", ""),
        )
        return ProviderResult(
            status=FAILED,
            decline_code=code or str(status),
            decline_kind=kind if status == 402 and kind else "hard",
        )

    def _checked_intent(self, intent: dict, deposit, *, error=None) -> ProviderResult:
        """An intent we asked about directly must be the deposit's: same reference, same
        currency. Anything else is never credited."""
        metadata = intent.get("metadata") if isinstance(intent.get("metadata"), dict) else {}
        currency = str(intent.get("currency") or "").upper()
        if metadata.get("reference") != deposit.reference or currency != deposit.currency_id:
            log.error(
                "%s returned intent %s for %s in %s: not this deposit's",
                self.provider.code,
                intent.get("id"),
                metadata.get("reference"),
                currency,
            )
            return ProviderResult(status=PENDING)
        return self._intent_result(intent, error=error)

    # --- deposits ----------------------------------------------------------------------------

    def start_payment(
        self, *, deposit, notify_url: str, return_url: str, payment_method: dict | None = None
    ) -> ProviderResult:
        """Create and confirm a PaymentIntent. `payment_method` is what the casino's Stripe.js
        collected: `{"id": "pm_…"}`. Webhooks go to the endpoint registered at Stripe (the
        Dashboard or `POST /v1/webhook_endpoints`), not to `notify_url`: Stripe takes no
        per-payment webhook address."""
        params = {
            "amount": self._minor(deposit.amount, deposit.currency_id),
            "currency": deposit.currency_id.lower(),
            "automatic_payment_methods": {"enabled": True},
            "metadata": {"reference": deposit.reference, "customer": deposit.player.external_id},
            "expand": ["latest_charge"],
        }
        chosen = (payment_method or {}).get("id") if isinstance(payment_method, dict) else None
        payment_method = chosen or self.provider.options.get("payment_method")
        if payment_method:
            # Confirming needs a card: the PaymentMethod collected by the casino's Stripe.js
            # or, in test mode, one of Stripe's test PaymentMethods.
            params.update(
                payment_method=str(payment_method), confirm=True, return_url=return_url or None
            )
        if descriptor := self.provider.options.get("statement_descriptor_suffix"):
            params["statement_descriptor_suffix"] = str(descriptor)
        status, body = self._post(
            "v1/payment_intents", params, idempotency_key=f"{deposit.reference}"
        )
        if status == 200 and isinstance(body, dict):
            return self._checked_intent(body, deposit)
        error = _error(body)
        intent = error.get("payment_intent")
        if status == 402 and isinstance(intent, dict):
            # A decline at confirmation: the intent is back at `requires_payment_method` and
            # the error says why (the same as its `last_payment_error`).
            return self._checked_intent(intent, deposit, error=error)
        return self._request_failed(status, body)

    def _retrieve_intent(self, deposit) -> dict | None:
        if deposit.provider_reference:
            status, body = self._get(
                f"v1/payment_intents/{quote(deposit.provider_reference, safe='')}",
                {"expand": ["latest_charge"]},
            )
            return self._object_or_none(status, body)
        return self._search_intent(deposit.reference)

    def _search_intent(self, reference: str) -> dict | None:
        """The intent made for our reference, when its create answer was lost. Stripe's search
        is eventually consistent (about a minute behind), which the janitor's delay covers."""
        escaped = reference.replace("\\", "\\\\").replace("'", "\\'")
        status, body = self._get(
            "v1/payment_intents/search",
            {"query": f"metadata['reference']:'{escaped}'", "expand": ["data.latest_charge"]},
        )
        found = self._object_or_none(status, body) or {}
        matches = [
            intent
            for intent in found.get("data") or []
            if isinstance(intent, dict) and _metadata(intent).get("reference") == reference
        ]
        if len(matches) > 1:
            # Our idempotency key makes one intent per reference; prefer the one that paid.
            matches.sort(key=lambda intent: intent.get("status") != "succeeded")
        return matches[0] if matches else None

    def fetch_payment_status(self, *, deposit) -> ProviderResult | None:
        intent = self._retrieve_intent(deposit)
        return None if intent is None else self._checked_intent(intent, deposit)

    def cancel_payment(self, *, deposit) -> ProviderResult | None:
        """Cancel the intent (`cancellation_reason=abandoned`) so it can no longer be paid.
        Stripe refuses to cancel an intent that succeeded or is processing; then we report
        what it is."""
        intent = self._retrieve_intent(deposit)
        if intent is None:
            return None
        if intent.get("status") in ("succeeded", "canceled", "processing"):
            return self._checked_intent(intent, deposit)
        status, body = self._post(
            f"v1/payment_intents/{quote(str(intent.get('id')), safe='')}/cancel",
            {"cancellation_reason": "abandoned", "expand": ["latest_charge"]},
            idempotency_key=f"{deposit.reference}-cancel",
        )
        if status == 200 and isinstance(body, dict):
            return self._checked_intent(body, deposit)
        self._refuse(status, body)
        # `payment_intent_unexpected_state`: it moved on meanwhile; say what it is now.
        intent = self._retrieve_intent(deposit)
        return None if intent is None else self._checked_intent(intent, deposit)

    # --- refunds -----------------------------------------------------------------------------

    def refund(self, *, refund, notify_url: str) -> ProviderResult:
        deposit = refund.deposit
        intent_id = deposit.provider_reference
        if not intent_id:
            intent = self._search_intent(deposit.reference)
            intent_id = str(intent.get("id")) if intent else ""
        if not intent_id:
            return ProviderResult(status=FAILED, decline_code="resource_missing")
        status, body = self._post(
            "v1/refunds",
            {
                "payment_intent": intent_id,
                "amount": self._minor(refund.amount, deposit.currency_id),
                "metadata": {"reference": refund.reference, "deposit": deposit.reference},
            },
            idempotency_key=refund.reference,
        )
        if status == 200 and isinstance(body, dict):
            return self._refund_result(body)
        return self._request_failed(status, body)

    def fetch_refund_status(self, *, refund) -> ProviderResult | None:
        if refund.provider_reference:
            status, body = self._get(f"v1/refunds/{quote(refund.provider_reference, safe='')}")
            found = self._object_or_none(status, body)
            return None if found is None else self._refund_result(found)
        intent_id = refund.deposit.provider_reference
        if not intent_id:
            return None
        # Refunds have no search: list the intent's refunds and find ours by metadata.
        status, body = self._get("v1/refunds", {"payment_intent": intent_id, "limit": 100})
        listed = self._object_or_none(status, body) or {}
        for item in listed.get("data") or []:
            if (
                isinstance(item, dict)
                and (item.get("metadata") or {}).get("reference") == refund.reference
            ):
                return self._refund_result(item)
        return None

    # --- payouts -------------------------------------------------------------------------------

    def start_payout(self, *, withdrawal, notify_url: str) -> ProviderResult:
        """A payout to the card on file as an external account (`destination` = the card's
        id, the token we store on the payout instrument). Stripe pays out from an account's
        balance to that account's own external accounts only, so paying a player runs on the
        player's connected account (`options["stripe_account"]`, Stripe Connect)."""
        status, body = self._post(
            "v1/payouts",
            {
                "amount": self._minor(withdrawal.amount, withdrawal.currency_id),
                "currency": withdrawal.currency_id.lower(),
                "destination": withdrawal.instrument.identifier,
                "method": str(self.provider.options.get("payout_method") or "standard"),
                "metadata": {"reference": withdrawal.reference},
            },
            idempotency_key=withdrawal.reference,
        )
        if status == 200 and isinstance(body, dict):
            return self._payout_result(body)
        return self._request_failed(status, body)

    def fetch_payout_status(self, *, withdrawal) -> ProviderResult | None:
        if withdrawal.provider_reference:
            status, body = self._get(f"v1/payouts/{quote(withdrawal.provider_reference, safe='')}")
            found = self._object_or_none(status, body)
            return None if found is None else self._payout_result(found)
        # No search for payouts: page through those created since the withdrawal started.
        since = int((withdrawal.processing_started_at or withdrawal.created_at).timestamp()) - 3600
        params: dict = {"limit": 100, "created": {"gte": since}}
        for _ in range(10):
            status, body = self._get("v1/payouts", params)
            listed = self._object_or_none(status, body) or {}
            data = [item for item in listed.get("data") or [] if isinstance(item, dict)]
            for item in data:
                if (item.get("metadata") or {}).get("reference") == withdrawal.reference:
                    return self._payout_result(item)
            if not listed.get("has_more") or not data:
                return None
            params["starting_after"] = data[-1].get("id")
        return None

    # --- webhooks ------------------------------------------------------------------------------

    def verify_webhook(self, *, body: bytes, headers: dict[str, str]) -> None:
        try:
            self._verify(body, headers)
        except InvalidSignature:
            raise
        except Exception as exc:  # whatever the bytes, the only answer is "not signed right"
            raise InvalidSignature(f"Stripe-Signature unreadable: {type(exc).__name__}") from None

    def _verify(self, body: bytes, headers: dict[str, str]) -> None:
        header = headers.get(SIGNATURE_HEADER) if isinstance(headers, dict) else None
        if not isinstance(header, str) or not header:
            raise InvalidSignature("No Stripe-Signature header.")
        if not self.webhook_secret:
            raise InvalidSignature("No webhook secret configured.")
        items = header.split(",")
        if len(items) > _MAX_SIGNATURE_ITEMS:
            raise InvalidSignature("Stripe-Signature has too many items.")
        timestamps, signatures = [], []
        for item in items:
            name, separator, value = item.strip().partition("=")
            if not separator:
                raise InvalidSignature("Stripe-Signature is not a list of key=value items.")
            if name == "t":
                timestamps.append(value)
            elif name == "v1":
                signatures.append(value)
        if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
            raise InvalidSignature("Stripe-Signature needs exactly one numeric timestamp t.")
        if not signatures:
            raise InvalidSignature("Stripe-Signature has no v1 signature.")
        timestamp = int(timestamps[0])
        if not isinstance(body, bytes | bytearray):
            raise InvalidSignature("The body is not bytes.")
        expected = hmac_sha256(self.webhook_secret, f"{timestamp}.".encode() + bytes(body))
        # Compare every candidate (no early exit) so timing does not tell which one matched.
        matched = [signatures_match(expected, candidate) for candidate in signatures]
        if not any(matched):
            raise InvalidSignature("No v1 signature matches the body.")
        if timestamp < time.time() - TOLERANCE_SECONDS:
            raise InvalidSignature(f"Stripe-Signature is older than {TOLERANCE_SECONDS} s.")

    def parse_webhook(self, *, body: bytes, headers: dict[str, str]) -> list[ProviderEvent]:
        try:
            event = json.loads(body)
        except (ValueError, TypeError) as exc:
            raise MalformedWebhook(f"body is not JSON: {exc}") from exc
        if not isinstance(event, dict) or event.get("object") != "event":
            raise MalformedWebhook('not a Stripe event (object != "event")')
        event_id, event_type = event.get("id"), event.get("type")
        if not isinstance(event_id, str) or not event_id.startswith("evt_"):
            raise MalformedWebhook(f"event id {event_id!r} is not a Stripe event id")
        if not isinstance(event_type, str) or not event_type:
            raise MalformedWebhook("event has no type")
        data = event.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        if not isinstance(obj, dict):
            raise MalformedWebhook("event has no data.object")
        if event.get("api_version") not in (None, self.stripe_version):
            # Objects are rendered in the endpoint's version: fields may have moved.
            log.warning(
                "%s event %s is in API version %s, we speak %s",
                self.provider.code,
                event_id,
                event.get("api_version"),
                self.stripe_version,
            )
        try:
            return self._events(event_id, event_type, obj)
        except MalformedWebhook:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedWebhook(f"{event_type}: {type(exc).__name__}: {exc}") from exc

    def _events(self, event_id: str, event_type: str, obj: dict) -> list[ProviderEvent]:
        kind = obj.get("object")
        if event_type.startswith("payment_intent.") and kind == "payment_intent":
            return [self._intent_event(event_id, event_type, obj)]
        if event_type.startswith("charge.dispute.") and kind == "dispute":
            return [self._dispute_event(event_id, event_type, obj)]
        if (
            event_type.startswith("refund.") or event_type == "charge.refund.updated"
        ) and kind == "refund":
            return [
                ProviderEvent(
                    subject=REFUND,
                    event_type=event_type,
                    dedup_key=event_id,
                    reference=_metadata(obj).get("reference", ""),
                    provider_reference=str(obj.get("id") or ""),
                    result=self._refund_result(obj),
                )
            ]
        if event_type.startswith("payout.") and kind == "payout":
            return [
                ProviderEvent(
                    subject=WITHDRAWAL,
                    event_type=event_type,
                    dedup_key=event_id,
                    reference=_metadata(obj).get("reference", ""),
                    provider_reference=str(obj.get("id") or ""),
                    result=self._payout_result(obj),
                )
            ]
        for prefix, expected in _EVENT_OBJECTS.items():
            if event_type.startswith(prefix) and kind != expected:
                raise MalformedWebhook(f"{event_type} carries a {kind!r}, not a {expected}")
        return []

    def _intent_event(self, event_id: str, event_type: str, intent: dict) -> ProviderEvent:
        if not isinstance(intent.get("id"), str):
            raise MalformedWebhook("payment_intent without id")
        result = self._intent_result(intent)
        charge_id = intent.get("latest_charge")
        if (
            result.status == SUCCEEDED
            and result.payer_instrument is None
            and isinstance(charge_id, str)
        ):
            # Events never expand: the card's fingerprint is on the charge.
            status, body = self._get(f"v1/charges/{quote(charge_id, safe='')}")
            charge = self._object_or_none(status, body)
            payer, payer_name = self._payer(charge)
            result = ProviderResult(
                **{**result.__dict__, "payer_instrument": payer, "payer_name": payer_name}
            )
        return ProviderEvent(
            subject=DEPOSIT,
            event_type=event_type,
            dedup_key=event_id,
            reference=_metadata(intent).get("reference", ""),
            provider_reference=intent["id"],
            result=result,
        )

    def _dispute_event(self, event_id: str, event_type: str, dispute: dict) -> ProviderEvent:
        dispute_id = dispute.get("id")
        if not isinstance(dispute_id, str) or not dispute_id:
            raise MalformedWebhook("dispute without id")
        currency = self._currency(dispute)
        amount = self._amount(dispute.get("amount"), currency)
        status = dispute.get("status")
        if event_type == "charge.dispute.funds_reinstated":
            action = DISPUTE_REVERSED
        elif event_type == "charge.dispute.funds_withdrawn":
            action = DISPUTE_CHARGEBACK
        elif status in _INQUIRY_STATUSES:
            action = DISPUTE_NOTIFIED
        elif event_type == "charge.dispute.closed" or status in ("won", "lost"):
            action = {"won": DISPUTE_REVERSED, "lost": DISPUTE_LOST}.get(status, DISPUTE_NOTIFIED)
        elif status in _OPEN_DISPUTE_STATUSES and event_type in (
            "charge.dispute.created",
            "charge.dispute.updated",
        ):
            # Stripe debits a dispute's amount when it is opened; `funds_withdrawn` says the
            # same thing again, and one chargeback per dispute id is ever booked.
            action = DISPUTE_CHARGEBACK
        else:
            action = DISPUTE_NOTIFIED
        evidence = dispute.get("evidence_details")
        due_by = evidence.get("due_by") if isinstance(evidence, dict) else None
        intent_id = dispute.get("payment_intent")
        charge = dispute.get("charge")
        return ProviderEvent(
            subject=DISPUTE,
            event_type=event_type,
            dedup_key=event_id,
            reference=self._reference_of_intent(intent_id),
            provider_reference=str(intent_id or charge or ""),
            dispute=DisputeInfo(
                action=action,
                dispute_reference=dispute_id,
                amount=amount,
                currency=currency,
                reason_code=str(dispute.get("reason") or ""),
                reason=f"dispute {status}" if status else "",
                due_by=datetime.fromtimestamp(due_by, UTC)
                if isinstance(due_by, int) and not isinstance(due_by, bool)
                else None,
            ),
        )

    def _reference_of_intent(self, intent_id) -> str:
        """A dispute names only Stripe's intent; our reference is in the intent's metadata.
        Asked so a dispute finds its deposit even when the create answer (and with it the
        intent id) was lost."""
        if not isinstance(intent_id, str) or not intent_id:
            return ""
        status, body = self._get(f"v1/payment_intents/{quote(intent_id, safe='')}")
        intent = self._object_or_none(status, body)
        return _metadata(intent).get("reference", "") if intent else ""


def _metadata(obj) -> dict:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    return (
        {k: v for k, v in metadata.items() if isinstance(v, str)}
        if isinstance(metadata, dict)
        else {}
    )


def _error(body) -> dict:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}
