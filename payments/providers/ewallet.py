"""E-wallet in the style of Skrill: form-encoded requests, a hosted wallet page, and a
form-encoded status callback whose `sha256sig` field is SHA-256 over a fixed list of fields
with the upper-cased SHA-256 of the shared secret word in the middle (Skrill's `md5sig`
scheme with a modern hash)."""

import hashlib
import hmac
from decimal import Decimal
from urllib.parse import parse_qs

from .base import (
    CANCELLED,
    CHARGEBACK,
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
    money,
)

_STATUSES = {"2": SUCCEEDED, "0": PENDING, "-1": CANCELLED, "-2": FAILED, "-3": CHARGEBACK}
_SUBJECTS = {"payment": DEPOSIT, "payout": WITHDRAWAL, "refund": REFUND}


def signature(*, secret_word: str, fields: dict) -> str:
    secret_hash = hashlib.sha256(secret_word.encode()).hexdigest().upper()
    message = "".join(
        [
            fields.get("merchant_id", ""),
            fields.get("transaction_id", ""),
            secret_hash,
            fields.get("mb_amount", ""),
            fields.get("mb_currency", ""),
            fields.get("status", ""),
        ]
    )
    return hashlib.sha256(message.encode()).hexdigest().upper()


def _form(body: bytes) -> dict:
    return {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}


class EwalletAdapter(PaymentAdapter):
    kind = "ewallet"
    # Skrill-style numeric reason codes: 04 insufficient balance, 13 provider error,
    # 21 timeout at the issuer. Everything else (blocked account, fraud, limits) is hard.
    soft_declines = frozenset({"04", "13", "21"})

    def _auth(self) -> dict:
        return {"merchant_id": self.provider.merchant_id, "api_password": self.api_key}

    def _result(self, fields: dict) -> ProviderResult:
        status = _STATUSES.get(fields.get("status", ""), PENDING)
        code = fields.get("failed_reason_code", "")
        amount = fields.get("mb_amount")
        return ProviderResult(
            status=status,
            provider_reference=fields.get("mb_transaction_id", ""),
            amount_received=Decimal(amount) if amount and status == SUCCEEDED else None,
            decline_code=code,
            decline_kind=self.decline_kind(code) if status == FAILED else "",
            # The payer's wallet account (Skrill's `pay_from_email`). Not covered by the
            # signature in this scheme, like Skrill's: it only ever groups players for review.
            payer_instrument=PayerInstrument.of("ewallet", fields.get("pay_from_email")),
        )

    def _post_form(self, path: str, data: dict) -> dict:
        response = self._request("POST", path, data={**self._auth(), **data})
        if response.status_code >= 400:
            raise ProviderUnavailable(
                f"{self.provider.code} refused the request: {response.text[:200]}",
                provider=self.provider.code,
                status=response.status_code,
            )
        return _form(response.content)

    def start_payment(self, *, deposit, notify_url, return_url):
        answer = self._post_form(
            "payment",
            {
                "transaction_id": deposit.reference,
                "customer": deposit.player.external_id,
                "amount": money(deposit.amount, deposit.currency_id),
                "currency": deposit.currency_id,
                "status_url": notify_url,
                "return_url": return_url,
            },
        )
        base = self.provider.api_base_url.rstrip("/")
        return ProviderResult(
            status=PENDING,
            provider_reference=answer["sid"],
            redirect_url=f"{base}/app?sid={answer['sid']}",
        )

    def start_payout(self, *, withdrawal, notify_url):
        answer = self._post_form(
            "transfer",
            {
                "transaction_id": withdrawal.reference,
                "bnf_account": withdrawal.instrument.identifier,
                "amount": money(withdrawal.amount, withdrawal.currency_id),
                "currency": withdrawal.currency_id,
                "status_url": notify_url,
            },
        )
        return self._result(answer)

    def refund(self, *, refund, notify_url):
        answer = self._post_form(
            "refund",
            {
                "transaction_id": refund.reference,
                "mb_transaction_id": refund.deposit.provider_reference,
                "amount": money(refund.amount, refund.deposit.currency_id),
                "currency": refund.deposit.currency_id,
                "status_url": notify_url,
            },
        )
        return self._result(answer)

    def _query(self, kind: str, reference: str) -> ProviderResult | None:
        answer = self._post_form(
            "query", {"action": "status_trn", "trn_id": reference, "type": kind}
        )
        if answer.get("found") != "1":
            return None
        return self._result(answer)

    def fetch_payment_status(self, *, deposit):
        return self._query("payment", deposit.reference)

    def fetch_payout_status(self, *, withdrawal):
        return self._query("payout", withdrawal.reference)

    def fetch_refund_status(self, *, refund):
        return self._query("refund", refund.reference)

    def verify_webhook(self, *, body, headers):
        fields = _form(body)
        received = fields.get("sha256sig", "")
        if not received:
            raise InvalidSignature("sha256sig missing.")
        if fields.get("merchant_id") != self.provider.merchant_id:
            raise InvalidSignature("Callback for another merchant.")
        expected = signature(secret_word=self.webhook_secret, fields=fields)
        if not hmac.compare_digest(expected, received.upper()):
            raise InvalidSignature("sha256sig does not match the fields.")

    def parse_webhook(self, *, body, headers):
        fields = _form(body)
        return ProviderEvent(
            subject=_SUBJECTS[fields.get("type", "payment")],
            reference=fields["transaction_id"],
            event_type=f"status {fields['status']}",
            result=self._result(fields),
        )
