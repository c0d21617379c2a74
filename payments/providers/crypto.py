"""Crypto payment processor in the style of BTCPay Server: an invoice with an address and an
expiry, statuses New / Processing / Settled / Expired / Invalid with the PaidPartial, PaidOver
and PaidLate flags, and webhooks signed as `BTCPay-Sig: sha256=<hex HMAC-SHA256 of the body>`.

A payment counts as settled only once it has the confirmations configured for its currency
(`provider.options["confirmations"]`, falling back to PAYMENTS_CRYPTO_CONFIRMATIONS): a
block reorganisation can undo fewer.
"""

import hmac
import json
from decimal import Decimal

from django.conf import settings

from .base import (
    DEPOSIT,
    EXPIRED,
    FAILED,
    PENDING,
    SUCCEEDED,
    WITHDRAWAL,
    InvalidSignature,
    PaymentAdapter,
    ProviderEvent,
    ProviderResult,
    hmac_sha256,
    money,
)

_PAYOUT_STATES = {
    "AwaitingApproval": PENDING,
    "AwaitingPayment": PENDING,
    "InProgress": PENDING,
    "Completed": SUCCEEDED,
    "Cancelled": FAILED,
}

_INVOICE_EVENTS = {
    "InvoiceCreated": "New",
    "InvoiceReceivedPayment": "Processing",
    "InvoiceProcessing": "Processing",
    "InvoiceSettled": "Settled",
    "InvoiceExpired": "Expired",
    "InvoiceInvalid": "Invalid",
}


class CryptoAdapter(PaymentAdapter):
    """No `refund`: `PaymentProvider.supports_refunds` is false for crypto. No payer
    instrument either: an invoice names only the address paid to, and a Bitcoin transaction
    has inputs, not one sender address a player could be linked by."""

    kind = "crypto"

    def _headers(self) -> dict:
        return {"Authorization": f"token {self.api_key}"}

    def _store(self) -> str:
        return f"api/v1/stores/{self.provider.merchant_id}"

    def confirmations_needed(self, currency: str) -> int:
        configured = self.provider.options.get("confirmations", {})
        return int(
            configured.get(currency, settings.PAYMENTS_CRYPTO_CONFIRMATIONS.get(currency, 1))
        )

    def _invoice_result(self, invoice: dict) -> ProviderResult:
        status = invoice.get("status", "New")
        paid = invoice.get("amountPaid")
        amount_received = Decimal(paid) if paid not in (None, "") else None
        is_late = (
            bool(invoice.get("afterExpiration")) or invoice.get("additionalStatus") == "PaidLate"
        )
        if status == "Settled":
            confirmed = int(invoice.get("confirmations", 0)) >= self.confirmations_needed(
                invoice.get("currency", "")
            )
            normalised = SUCCEEDED if confirmed and amount_received else PENDING
        elif status == "Expired":
            normalised = EXPIRED
        elif status == "Invalid":
            normalised = FAILED
        else:
            normalised = PENDING
        return ProviderResult(
            status=normalised,
            provider_reference=invoice.get("id", ""),
            redirect_url=invoice.get("checkoutLink", ""),
            instructions={
                k: invoice[k] for k in ("address", "expirationTime", "paymentLink") if k in invoice
            },
            amount_received=amount_received if normalised == SUCCEEDED else None,
            is_late=is_late,
            decline_code="invalid" if normalised == FAILED else "",
            decline_kind="hard" if normalised == FAILED else "",
        )

    def _payout_result(self, payout: dict) -> ProviderResult:
        status = _PAYOUT_STATES.get(payout.get("state", ""), PENDING)
        return ProviderResult(
            status=status,
            provider_reference=payout.get("id", ""),
            decline_code="cancelled" if status == FAILED else "",
            decline_kind="hard" if status == FAILED else "",
        )

    def start_payment(self, *, deposit, notify_url, return_url):
        response = self._request(
            "POST",
            f"{self._store()}/invoices",
            headers=self._headers(),
            json={
                "amount": money(deposit.amount, deposit.currency_id),
                "currency": deposit.currency_id,
                "metadata": {"orderId": deposit.reference},
                "checkout": {
                    "redirectURL": return_url,
                    "expirationMinutes": max(1, self.provider.deposit_timeout_seconds // 60),
                },
                "notificationURL": notify_url,
            },
        )
        return self._invoice_result(self._json(response))

    def start_payout(self, *, withdrawal, notify_url):
        response = self._request(
            "POST",
            f"{self._store()}/payouts",
            headers=self._headers(),
            json={
                "destination": withdrawal.instrument.identifier,
                "network": withdrawal.instrument.network,
                "amount": money(withdrawal.amount, withdrawal.currency_id),
                "paymentMethod": withdrawal.currency_id,
                "metadata": {"orderId": withdrawal.reference},
                "notificationURL": notify_url,
            },
        )
        return self._payout_result(self._json(response))

    def fetch_payment_status(self, *, deposit):
        response = self._request(
            "GET",
            f"{self._store()}/invoices",
            headers=self._headers(),
            params={"orderId": deposit.reference},
        )
        found = self._json(response)
        return self._invoice_result(found[0]) if found else None

    def fetch_payout_status(self, *, withdrawal):
        response = self._request(
            "GET",
            f"{self._store()}/payouts",
            headers=self._headers(),
            params={"orderId": withdrawal.reference},
        )
        found = self._json(response)
        return self._payout_result(found[0]) if found else None

    def verify_webhook(self, *, body, headers):
        received = headers.get("btcpay-sig", "")
        if not received.startswith("sha256="):
            raise InvalidSignature("BTCPay-Sig missing or malformed.")
        expected = "sha256=" + hmac_sha256(self.webhook_secret, body)
        if not hmac.compare_digest(expected, received):
            raise InvalidSignature("BTCPay-Sig does not match the body.")

    def parse_webhook(self, *, body, headers):
        payload = json.loads(body)
        kind = payload["type"]
        reference = payload["metadata"]["orderId"]
        if kind == "PayoutUpdated":
            return ProviderEvent(
                subject=WITHDRAWAL,
                reference=reference,
                event_type=f"{kind} {payload.get('state', '')}",
                result=self._payout_result({"id": payload.get("payoutId", ""), **payload}),
            )
        invoice = {"id": payload.get("invoiceId", ""), "status": _INVOICE_EVENTS[kind], **payload}
        return ProviderEvent(
            subject=DEPOSIT,
            reference=reference,
            event_type=kind,
            result=self._invoice_result(invoice),
        )
