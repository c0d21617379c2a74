"""Card acquirer in the style of Stripe: JSON over HTTPS with a secret API key, a 3-D Secure
redirect when the issuer asks for it, and webhooks signed as
`Card-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` with a 300 s tolerance
against replays."""

import hmac
import json
import time
from decimal import Decimal

from .base import (
    CANCELLED,
    DEPOSIT,
    FAILED,
    PENDING,
    REFUND,
    SUCCEEDED,
    WITHDRAWAL,
    InvalidSignature,
    PayerInstrument,
    PaymentAdapter,
    ProviderEvent,
    ProviderResult,
    hmac_sha256,
    money,
)

SIGNATURE_HEADER = "card-signature"
TOLERANCE_SECONDS = 300

_STATUSES = {
    "requires_action": PENDING,
    "processing": PENDING,
    "pending": PENDING,
    "succeeded": SUCCEEDED,
    "paid": SUCCEEDED,
    "declined": FAILED,
    "failed": FAILED,
    "canceled": CANCELLED,
}
_SUBJECTS = {"payment": DEPOSIT, "payout": WITHDRAWAL, "refund": REFUND}


def sign(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={hmac_sha256(secret, f'{timestamp}.'.encode() + body)}"


class CardAdapter(PaymentAdapter):
    kind = "card"
    soft_declines = frozenset(
        {"insufficient_funds", "do_not_honor", "try_again_later", "issuer_unavailable"}
    )

    def _headers(self, idempotency_key: str) -> dict:
        return {"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": idempotency_key}

    def _result(self, payload: dict) -> ProviderResult:
        decline_code = payload.get("decline_code") or ""
        amount = payload.get("amount_captured") or payload.get("amount")
        status = _STATUSES.get(payload.get("status", ""), PENDING)
        # Stripe-style card fingerprint: the same card number gives the same value for every
        # customer of the account, so it links players without the card number reaching us.
        card = (payload.get("payment_method_details") or {}).get("card") or {}
        return ProviderResult(
            status=status,
            provider_reference=payload.get("id", ""),
            redirect_url=(payload.get("next_action") or {}).get("redirect_url", ""),
            amount_received=Decimal(amount) if amount and status == SUCCEEDED else None,
            decline_code=decline_code,
            decline_kind=self.decline_kind(decline_code),
            payer_instrument=PayerInstrument.of("card", card.get("fingerprint")),
        )

    def start_payment(self, *, deposit, notify_url, return_url):
        response = self._request(
            "POST",
            "v1/payments",
            headers=self._headers(deposit.reference),
            json={
                "amount": money(deposit.amount, deposit.currency_id),
                "currency": deposit.currency_id,
                "reference": deposit.reference,
                "customer": deposit.player.external_id,
                "return_url": return_url,
                "notify_url": notify_url,
            },
        )
        return self._result(self._json(response))

    def start_payout(self, *, withdrawal, notify_url):
        response = self._request(
            "POST",
            "v1/payouts",
            headers=self._headers(withdrawal.reference),
            json={
                "amount": money(withdrawal.amount, withdrawal.currency_id),
                "currency": withdrawal.currency_id,
                "reference": withdrawal.reference,
                "card_token": withdrawal.instrument.identifier,
                "notify_url": notify_url,
            },
        )
        return self._result(self._json(response))

    def refund(self, *, refund, notify_url):
        deposit = refund.deposit
        response = self._request(
            "POST",
            "v1/refunds",
            headers=self._headers(refund.reference),
            json={
                "payment": deposit.provider_reference,
                "amount": money(refund.amount, deposit.currency_id),
                "currency": deposit.currency_id,
                "reference": refund.reference,
                "notify_url": notify_url,
            },
        )
        return self._result(self._json(response))

    def _find(self, path: str, reference: str) -> ProviderResult | None:
        response = self._request(
            "GET", path, params={"reference": reference}, headers=self._headers(reference)
        )
        found = self._json(response).get("data") or []
        return self._result(found[0]) if found else None

    def fetch_payment_status(self, *, deposit):
        return self._find("v1/payments", deposit.reference)

    def fetch_payout_status(self, *, withdrawal):
        return self._find("v1/payouts", withdrawal.reference)

    def fetch_refund_status(self, *, refund):
        return self._find("v1/refunds", refund.reference)

    def verify_webhook(self, *, body, headers):
        header = headers.get(SIGNATURE_HEADER, "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        try:
            timestamp = int(parts["t"])
        except (KeyError, ValueError):
            raise InvalidSignature("Card-Signature header missing or malformed.") from None
        if abs(time.time() - timestamp) > TOLERANCE_SECONDS:
            raise InvalidSignature("Card-Signature timestamp outside the 300 s tolerance.")
        expected = sign(self.webhook_secret, body, timestamp).split("v1=", 1)[1]
        # Several v1 values may be present while the provider rotates secrets.
        candidates = [p.split("=", 1)[1] for p in header.split(",") if p.startswith("v1=")]
        if not any(hmac.compare_digest(expected, c) for c in candidates):
            raise InvalidSignature("Card-Signature does not match the body.")

    def parse_webhook(self, *, body, headers):
        payload = json.loads(body)
        object_kind, _, _ = payload["type"].partition(".")
        data = payload["data"]
        return ProviderEvent(
            subject=_SUBJECTS[object_kind],
            reference=data["reference"],
            event_type=payload["type"],
            result=self._result(data),
        )
