"""How each simulated provider words its objects and signs its webhooks.

Written from each provider's published format, independently of the adapters in
`payments/providers/`: the tests check that the two agree over HTTP.
"""

import hashlib
import hmac
import json
import re
import secrets
import time
from urllib.parse import urlencode

from . import core
from .models import SandboxPayment

# Signs the bad-signature scenario: anything but the provider's real secret.
WRONG_SECRET = "not-the-shared-secret"  # noqa: S105


def _hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _amount(value, currency) -> str:
    from wallets.services import quantize_money

    return str(quantize_money(value, currency))


def _payer(payment: SandboxPayment, outcome: str) -> str:
    """Who paid: what the player typed on the hosted page (`payer`), else the merchant's
    customer reference, so one test player paying twice pays from the same instrument.
    Unknown while the payment waits for the player (they choose it on the hosted page)."""
    if payment.kind != SandboxPayment.Kind.PAYMENT or outcome == core.PENDING:
        return ""
    return str(payment.data.get("payer") or payment.data.get("customer") or "")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def sandbox_iban(source: str) -> str:
    """A valid German IBAN (mod-97 check digits) derived from `source`."""
    bban = "37040044" + f"{int(_digest(source), 16) % 10**10:010d}"
    check = 98 - int("".join(str(int(c, 36)) for c in bban + "DE00")) % 97
    return f"DE{check:02d}{bban}"


class Card:
    statuses = {
        SandboxPayment.Kind.PAYMENT: {
            core.PENDING: "requires_action",
            core.PROCESSING: "processing",
            core.PAID: "succeeded",
            core.DECLINED_SOFT: "declined",
            core.DECLINED_HARD: "declined",
            core.CANCELLED: "canceled",
        },
        SandboxPayment.Kind.PAYOUT: {
            core.PENDING: "pending",
            core.PROCESSING: "pending",
            core.PAID: "paid",
            core.DECLINED_SOFT: "failed",
            core.DECLINED_HARD: "failed",
        },
        SandboxPayment.Kind.REFUND: {
            core.PENDING: "pending",
            core.PROCESSING: "pending",
            core.PAID: "succeeded",
            core.DECLINED_SOFT: "failed",
            core.DECLINED_HARD: "failed",
        },
    }
    decline_codes = {core.DECLINED_SOFT: "insufficient_funds", core.DECLINED_HARD: "stolen_card"}

    @classmethod
    def render(cls, payment: SandboxPayment, outcome: str | None = None, base_url: str = ""):
        outcome = outcome or payment.status
        body = {
            "id": payment.sandbox_id,
            "object": payment.kind,
            "reference": payment.merchant_reference,
            "amount": _amount(payment.amount, payment.currency),
            "currency": payment.currency,
            "status": cls.statuses[payment.kind].get(outcome, "processing"),
            "decline_code": cls.decline_codes.get(outcome),
        }
        if outcome == core.PAID and payment.amount_paid is not None:
            body["amount_captured"] = _amount(payment.amount_paid, payment.currency)
        if payer := _payer(payment, outcome):
            card = re.sub(r"[\s-]", "", payer)
            body["payment_method_details"] = {
                "type": "card",
                "card": {"fingerprint": _digest(f"sandbox card {card}")[:16]},
            }
        if payment.kind == SandboxPayment.Kind.PAYMENT and outcome == core.PENDING and base_url:
            body["next_action"] = {"redirect_url": f"{base_url}3ds/{payment.sandbox_id}"}
        return body

    @classmethod
    def webhook(cls, payment, outcome, secret):
        data = cls.render(payment, outcome)
        body = json.dumps(
            {
                "id": f"evt_{secrets.token_hex(8)}",
                "type": f"{payment.kind}.{data['status']}",
                "created": int(time.time()),
                "data": data,
            }
        ).encode()
        timestamp = int(time.time())
        signature = _hmac(secret, f"{timestamp}.".encode() + body)
        return body, {
            "Content-Type": "application/json",
            "Card-Signature": f"t={timestamp},v1={signature}",
        }


class Ewallet:
    statuses = {
        core.PENDING: "0",
        core.PROCESSING: "0",
        core.PAID: "2",
        core.CANCELLED: "-1",
        core.DECLINED_SOFT: "-2",
        core.DECLINED_HARD: "-2",
    }
    reason_codes = {core.DECLINED_SOFT: "04", core.DECLINED_HARD: "06"}

    @classmethod
    def fields(cls, payment, outcome, merchant_id):
        paid = (
            payment.amount_paid if outcome == core.PAID and payment.amount_paid else payment.amount
        )
        payer = _payer(payment, outcome)
        if payer and "@" not in payer:
            payer = re.sub(r"[^a-z0-9._-]", "-", payer.lower()) + "@wallet.sandbox.test"
        payer_fields = {"pay_from_email": payer} if payer else {}
        return {
            "merchant_id": merchant_id,
            "transaction_id": payment.merchant_reference,
            "mb_transaction_id": payment.sandbox_id,
            "mb_amount": _amount(paid, payment.currency),
            "mb_currency": payment.currency,
            "status": cls.statuses.get(outcome, "0"),
            "failed_reason_code": cls.reason_codes.get(outcome, ""),
            "type": payment.kind,
            **payer_fields,
        }

    @staticmethod
    def sign(fields, secret_word):
        secret_hash = hashlib.sha256(secret_word.encode()).hexdigest().upper()
        message = (
            fields["merchant_id"]
            + fields["transaction_id"]
            + secret_hash
            + fields["mb_amount"]
            + fields["mb_currency"]
            + fields["status"]
        )
        return hashlib.sha256(message.encode()).hexdigest().upper()

    @classmethod
    def webhook(cls, payment, outcome, secret, merchant_id=""):
        fields = cls.fields(payment, outcome, merchant_id)
        fields["sha256sig"] = cls.sign(fields, secret)
        return urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"}


class OpenBanking:
    statuses = {
        core.PENDING: "PDNG",
        core.PROCESSING: "ACTC",
        core.PAID: "ACSC",
        core.CANCELLED: "CANC",
        core.DECLINED_SOFT: "RJCT",
        core.DECLINED_HARD: "RJCT",
    }
    reason_codes = {core.DECLINED_SOFT: "AM04", core.DECLINED_HARD: "AC04"}
    types = {
        SandboxPayment.Kind.PAYMENT: "payment_status",
        SandboxPayment.Kind.PAYOUT: "payout_status",
        SandboxPayment.Kind.REFUND: "refund_status",
    }

    @classmethod
    def render(cls, payment, outcome=None, base_url=""):
        outcome = outcome or payment.status
        body = {
            "id": payment.sandbox_id,
            "reference": payment.merchant_reference,
            "amount": {
                "value": _amount(payment.amount, payment.currency),
                "currency": payment.currency,
            },
            "status": cls.statuses.get(outcome, "RCVD"),
            "reason_code": cls.reason_codes.get(outcome),
        }
        if payment.kind == SandboxPayment.Kind.PAYMENT and outcome == core.PENDING and base_url:
            body["status"] = "RCVD"
            body["consent_url"] = f"{base_url}consent/{payment.sandbox_id}"
        if payer := _payer(payment, outcome):
            entered = payment.data.get("payer")
            iban = re.sub(r"\s+", "", entered).upper() if entered else sandbox_iban(payer)
            body["debtor_account"] = {"iban": iban}
        return body

    @classmethod
    def webhook(cls, payment, outcome, secret):
        body = json.dumps(
            {
                "event_id": secrets.token_hex(8),
                "type": cls.types[payment.kind],
                **cls.render(payment, outcome),
            }
        ).encode()
        timestamp = int(time.time())
        return body, {
            "Content-Type": "application/json",
            "OB-Timestamp": str(timestamp),
            "OB-Signature": "sha256=" + _hmac(secret, f"{timestamp}.".encode() + body),
        }


class Crypto:
    invoice_events = {
        core.PENDING: ("InvoiceProcessing", "Processing"),
        core.PROCESSING: ("InvoiceProcessing", "Processing"),
        core.PAID: ("InvoiceSettled", "Settled"),
        core.EXPIRED: ("InvoiceExpired", "Expired"),
        core.DECLINED_SOFT: ("InvoiceInvalid", "Invalid"),
        core.DECLINED_HARD: ("InvoiceInvalid", "Invalid"),
    }
    payout_states = {
        core.PENDING: "InProgress",
        core.PROCESSING: "InProgress",
        core.PAID: "Completed",
        core.DECLINED_SOFT: "Cancelled",
        core.DECLINED_HARD: "Cancelled",
    }
    # Deep enough for every default threshold; a test raises the provider's threshold above it.
    CONFIRMATIONS = 20

    @classmethod
    def invoice(cls, payment, outcome=None, base_url=""):
        outcome = outcome or payment.status
        _, status = cls.invoice_events.get(outcome, ("InvoiceCreated", "New"))
        if outcome == core.PENDING and payment.amount_paid is None:
            status = "New"
        body = {
            "id": payment.sandbox_id,
            "status": status,
            "amount": _amount(payment.amount, payment.currency),
            "currency": payment.currency,
            "metadata": {"orderId": payment.merchant_reference},
            "address": payment.data.get("address", ""),
            "expirationTime": payment.data.get("expires_at", 0),
            "confirmations": cls.CONFIRMATIONS if outcome == core.PAID else 0,
            **cls._flags(payment),
        }
        if payment.amount_paid is not None:
            body["amountPaid"] = _amount(payment.amount_paid, payment.currency)
        if base_url:
            body["checkoutLink"] = f"{base_url}i/{payment.sandbox_id}"
        return body

    @staticmethod
    def _flags(payment):
        paid = payment.amount_paid
        return {
            "afterExpiration": bool(payment.data.get("paid_late")),
            "overPaid": paid is not None and paid > payment.amount,
            "partiallyPaid": paid is not None and paid < payment.amount,
            "additionalStatus": "PaidLate"
            if payment.data.get("paid_late")
            else (
                "PaidOver"
                if paid is not None and paid > payment.amount
                else "PaidPartial"
                if paid is not None and paid < payment.amount
                else "None"
            ),
        }

    @classmethod
    def payout(cls, payment, outcome=None):
        outcome = outcome or payment.status
        return {
            "id": payment.sandbox_id,
            "state": cls.payout_states.get(outcome, "AwaitingPayment"),
            "amount": _amount(payment.amount, payment.currency),
            "metadata": {"orderId": payment.merchant_reference},
        }

    @classmethod
    def webhook(cls, payment, outcome, secret):
        if payment.kind == SandboxPayment.Kind.PAYOUT:
            data = cls.payout(payment, outcome)
            payload = {"type": "PayoutUpdated", "payoutId": data.pop("id"), **data}
        else:
            data = cls.invoice(payment, outcome)
            event_type, _ = cls.invoice_events.get(outcome, ("InvoiceCreated", "New"))
            if outcome == core.PENDING and payment.amount_paid is not None:
                event_type = "InvoiceReceivedPayment"
            data.pop("status")  # BTCPay webhooks name the event, not the invoice status
            payload = {"type": event_type, "invoiceId": data.pop("id"), **data}
        payload.update({"deliveryId": secrets.token_hex(8), "timestamp": int(time.time())})
        body = json.dumps(payload).encode()
        return body, {
            "Content-Type": "application/json",
            "BTCPay-Sig": "sha256=" + _hmac(secret, body),
        }


DIALECTS = {"card": Card, "ewallet": Ewallet, "open_banking": OpenBanking, "crypto": Crypto}
