"""Open banking payment initiation (PSD2 style): an OAuth2 client-credentials bearer token, a
redirect to the bank's consent page, and ISO 20022 payment statuses. Webhooks carry
`OB-Timestamp` and `OB-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`."""

import hmac
import json
import threading
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
    ProviderUnavailable,
    hmac_sha256,
    money,
)

TOLERANCE_SECONDS = 300

# ISO 20022 transaction statuses. ACSP ("settlement in process") is not yet money in our
# account: we credit only on ACSC, the one status a bank cannot walk back.
ISO_STATUSES = {
    "RCVD": PENDING,
    "PDNG": PENDING,
    "ACTC": PENDING,
    "ACSP": PENDING,
    "ACSC": SUCCEEDED,
    "RJCT": FAILED,
    "CANC": CANCELLED,
}
_SUBJECTS = {"payment_status": DEPOSIT, "payout_status": WITHDRAWAL, "refund_status": REFUND}

_tokens: dict[str, tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    return "sha256=" + hmac_sha256(secret, f"{timestamp}.".encode() + body)


class OpenBankingAdapter(PaymentAdapter):
    kind = "open_banking"
    # ISO 20022 ExternalStatusReason codes: AM04 insufficient funds, MS03 unspecified by the
    # agent, TM01 past cut-off, AB05/AB06 timeouts. AC01/AC04/AG01/… (wrong or closed
    # account, forbidden) are hard.
    soft_declines = frozenset({"AM04", "MS03", "TM01", "AB05", "AB06"})

    def _token(self) -> str:
        """Tokens are cached per process until 30 s before they expire."""
        cache_key = f"{self.provider.code}:{self.provider.merchant_id}"
        with _tokens_lock:
            token, expires = _tokens.get(cache_key, ("", 0.0))
            if token and expires - 30 > time.monotonic():
                return token
        response = self._request(
            "POST",
            "oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.provider.merchant_id,
                "client_secret": self.api_key,
            },
        )
        payload = self._json(response)
        if response.status_code != 200 or "access_token" not in payload:
            raise ProviderUnavailable(
                f"{self.provider.code} refused our credentials.", provider=self.provider.code
            )
        with _tokens_lock:
            _tokens[cache_key] = (
                payload["access_token"],
                time.monotonic() + int(payload.get("expires_in", 300)),
            )
        return payload["access_token"]

    def _call(self, method: str, path: str, **kwargs) -> dict:
        headers = {"Authorization": f"Bearer {self._token()}"}
        return self._json(self._request(method, path, headers=headers, **kwargs))

    def _result(self, payload: dict) -> ProviderResult:
        status = ISO_STATUSES.get(payload.get("status", ""), PENDING)
        code = payload.get("reason_code") or ""
        amount = (payload.get("amount") or {}).get("value")
        return ProviderResult(
            status=status,
            provider_reference=payload.get("id", ""),
            redirect_url=payload.get("consent_url", ""),
            amount_received=Decimal(amount) if amount and status == SUCCEEDED else None,
            decline_code=code,
            decline_kind=self.decline_kind(code) if status == FAILED else "",
            # The account the payer authorised the payment from (ISO 20022 debtor account).
            payer_instrument=PayerInstrument.of(
                "iban", (payload.get("debtor_account") or {}).get("iban")
            ),
        )

    def start_payment(self, *, deposit, notify_url, return_url):
        return self._result(
            self._call(
                "POST",
                "v1/payments",
                json={
                    "amount": {
                        "value": money(deposit.amount, deposit.currency_id),
                        "currency": deposit.currency_id,
                    },
                    "reference": deposit.reference,
                    "customer": deposit.player.external_id,
                    "redirect_uri": return_url,
                    "webhook_uri": notify_url,
                },
            )
        )

    def start_payout(self, *, withdrawal, notify_url):
        instrument = withdrawal.instrument
        return self._result(
            self._call(
                "POST",
                "v1/payouts",
                json={
                    "amount": {
                        "value": money(withdrawal.amount, withdrawal.currency_id),
                        "currency": withdrawal.currency_id,
                    },
                    "reference": withdrawal.reference,
                    "creditor": {"iban": instrument.identifier, "name": instrument.holder_name},
                    "webhook_uri": notify_url,
                },
            )
        )

    def refund(self, *, refund, notify_url):
        return self._result(
            self._call(
                "POST",
                "v1/refunds",
                json={
                    "payment_id": refund.deposit.provider_reference,
                    "amount": {
                        "value": money(refund.amount, refund.deposit.currency_id),
                        "currency": refund.deposit.currency_id,
                    },
                    "reference": refund.reference,
                    "webhook_uri": notify_url,
                },
            )
        )

    def _find(self, path: str, reference: str) -> ProviderResult | None:
        found = self._call("GET", path, params={"reference": reference}).get("data") or []
        return self._result(found[0]) if found else None

    def fetch_payment_status(self, *, deposit):
        return self._find("v1/payments", deposit.reference)

    def fetch_payout_status(self, *, withdrawal):
        return self._find("v1/payouts", withdrawal.reference)

    def fetch_refund_status(self, *, refund):
        return self._find("v1/refunds", refund.reference)

    def verify_webhook(self, *, body, headers):
        try:
            timestamp = int(headers.get("ob-timestamp", ""))
        except ValueError:
            raise InvalidSignature("OB-Timestamp missing or malformed.") from None
        if abs(time.time() - timestamp) > TOLERANCE_SECONDS:
            raise InvalidSignature("OB-Timestamp outside the 300 s tolerance.")
        expected = sign(self.webhook_secret, body, timestamp)
        if not hmac.compare_digest(expected, headers.get("ob-signature", "")):
            raise InvalidSignature("OB-Signature does not match the body.")

    def parse_webhook(self, *, body, headers):
        payload = json.loads(body)
        return ProviderEvent(
            subject=_SUBJECTS[payload["type"]],
            reference=payload["reference"],
            event_type=f"{payload['type']} {payload['status']}",
            result=self._result(payload),
        )
