"""BTCPay Server, Greenfield API v1: invoices for deposits, store payouts for withdrawals.

Protocol and sources (BTCPay Server's OpenAPI templates under
`BTCPayServer/wwwroot/swagger/v1/`, published at https://docs.btcpayserver.org/API/Greenfield/v1/,
and the server's own source, github.com/btcpayserver/btcpayserver):

- Auth: `Authorization: token <API key>`; the store is `provider.merchant_id`. A refused key
  answers 401 `{"code": "unauthenticated"}`, a key without rights on the store 403
  `{"code": "missing-permission"}`; both mean the call did nothing (`ProviderUnavailable`).
- Deposits: `POST /api/v1/stores/{storeId}/invoices` with `amount` (decimal string),
  `currency`, `metadata.orderId` = our deposit reference and `checkout` (`speedPolicy`,
  `paymentMethods`, `expirationMinutes`, `redirectURL`, `lazyPaymentMethods: false` so the
  address exists at once). Status by `GET …/invoices/{invoiceId}` and, when we never learnt
  the invoice id (the create call timed out), `GET …/invoices?orderId=<reference>`. Money by
  `GET …/invoices/{invoiceId}/payment-methods` (per method: `currency`, `rate`, `payments`
  with `value`, `fee`, `status`).
- Webhooks: `BTCPay-Sig: sha256=<hex HMAC-SHA256(UTF-8 secret, raw body)>` (WebhookSender.cs).
  An invoice event names the invoice and nothing we may book: the amounts, the payments and
  their confirmation state always come from the API, fetched inside `parse_webhook`.
- Withdrawals: `POST /api/v1/stores/{storeId}/payouts` (`destination`, `amount`,
  `payoutMethodId`, `approved`, `metadata.orderId` = our withdrawal reference), status by
  `GET /api/v1/stores/{storeId}/payouts/{payoutId}`; states AwaitingApproval, AwaitingPayment,
  InProgress → pending, Completed → succeeded, Cancelled → failed.
- Cancel: `POST …/invoices/{invoiceId}/status` `{"status": "Invalid"}` (mark invalid).
- No refunds (a crypto payment cannot be pulled back; `PaymentProvider.supports_refunds` is
  false for crypto) and no disputes: there is no chargeback on a blockchain.

Confirmations. Greenfield never reports a confirmation count: a payment's `status` is
`Settled` once it has the confirmations the invoice's `speedPolicy` asks for, and that
policy means a different depth on each chain. So we ask for the weakest policy that reaches
the depth we require for the currency (`provider.options["confirmations"][currency]`, else
`PAYMENTS_CRYPTO_CONFIRMATIONS`), and credit only Settled payments of an invoice whose
policy, as the API reports it back, still reaches that depth. A depth no policy reaches is
refused before any invoice exists (decline `confirmations-unattainable`).

Decline codes (soft = another try or another provider may work), from the error codes the
Greenfield controllers return (GreenfieldInvoiceController.cs, GreenfieldPullPaymentController.cs,
GreenfieldAPIError.cs): invoice creation answers 400 `generic-error` with a message; the
message "Error retrieving a matching payment method or rate" (a rate source or a wallet node
that did not answer) becomes our soft `payment-method-or-rate-unavailable`, "No wallet has
been linked" our hard `no-wallet`; a 422 validation error is hard `invalid-request`; payout
creation codes (`duplicate-destination`, `amount-too-low`, `payment-method-not-supported`,
`overdraft`, `expired`, `archived`, `not-started`) are hard, as is a 422 on the destination
(`invalid-destination`); an invoice that goes Invalid without being marked (its payment did
not confirm in time) is hard `invoice-invalid`; a payout cancelled at BTCPay is hard
`payout-cancelled`.
"""

import json
import logging
from dataclasses import replace
from decimal import ROUND_DOWN, Decimal

from django.conf import settings

from wallets.money import minor_unit

from .base import (
    CANCELLED,
    DEPOSIT,
    EXPIRED,
    FAILED,
    PENDING,
    SUCCEEDED,
    WITHDRAWAL,
    InvalidSignature,
    MalformedWebhook,
    PaymentAdapter,
    ProviderEvent,
    ProviderResult,
    ProviderTimeout,
    ProviderUnavailable,
    hmac_sha256,
    money,
    parse_decimal,
    signatures_match,
)

log = logging.getLogger(__name__)

# Speed policies from the weakest to the strongest.
SPEED_POLICIES = ("HighSpeed", "MediumSpeed", "LowMediumSpeed", "LowSpeed")

# Confirmations each policy waits for before a payment is Settled, per currency.
# BTC: the Greenfield `SpeedPolicy` schema (0, 1, 2, 6). EVM tokens and ether: the BTCPay
# USDt plugin's `EthUSDtPaymentData.PaymentConfirmed` (2, 6, 12, 20). Another chain (or
# plugin) states its own table in `provider.options["speed_policy_confirmations"]`.
DEFAULT_POLICY_CONFIRMATIONS = {
    "BTC": {"HighSpeed": 0, "MediumSpeed": 1, "LowMediumSpeed": 2, "LowSpeed": 6},
    "ETH": {"HighSpeed": 2, "MediumSpeed": 6, "LowMediumSpeed": 12, "LowSpeed": 20},
    "USDT": {"HighSpeed": 2, "MediumSpeed": 6, "LowMediumSpeed": 12, "LowSpeed": 20},
}

_PAYOUT_STATES = {
    "AwaitingApproval": PENDING,
    "AwaitingPayment": PENDING,
    "InProgress": PENDING,
    "Completed": SUCCEEDED,
    "Cancelled": FAILED,
}

_INVOICE_EVENTS = frozenset(
    {
        "InvoiceCreated",
        "InvoiceReceivedPayment",
        "InvoiceProcessing",
        "InvoiceSettled",
        "InvoiceExpired",
        "InvoiceInvalid",
        "InvoicePaymentSettled",
        "InvoicePaidAfterExpiration",
        "InvoiceExpiredPaidPartial",
    }
)
_PAYOUT_EVENTS = frozenset({"PayoutCreated", "PayoutApproved", "PayoutUpdated"})


class BTCPayConnector(PaymentAdapter):
    """BTCPay Server Greenfield.

    `parse_webhook` returns one event per invoice or payout delivery, with what the API says
    the object now is (a pending result when nothing final happened yet), and an empty list
    for the store's other events (payment requests, subscriptions, invoice refunds), which
    move no money of ours. No payer instrument: an invoice names only the address paid to,
    and a transaction has inputs, not one sender a player could be linked by.

    `provider.options` keys:
    - `confirmations`: `{currency: depth}` required before crediting (falls back to
      `PAYMENTS_CRYPTO_CONFIRMATIONS`);
    - `speed_policy_confirmations`: `{currency: {policy: depth}}`, overriding the table above;
    - `payment_method_ids`: `{currency: id}` for invoices (default `<currency>-CHAIN`);
    - `payout_method_ids`: `{"<currency>:<network>": id}` (default `<currency>-CHAIN`);
    - `approve_payouts`: create payouts approved (default true: our own review and four-eyes
      approval come first; BTCPay needs `btcpay.store.cancreatepullpayments` for it).
    """

    protocol = "btcpay"
    soft_declines = frozenset({"payment-method-or-rate-unavailable"})
    supports_payouts = True
    supports_cancel = True

    # --- configuration ------------------------------------------------------------------------

    @property
    def _options(self) -> dict:
        return self.provider.options if isinstance(self.provider.options, dict) else {}

    def _store_path(self) -> str:
        return f"api/v1/stores/{self.provider.merchant_id}"

    def _headers(self) -> dict:
        return {"Authorization": f"token {self.api_key}", "Accept": "application/json"}

    def confirmations_needed(self, currency: str) -> int:
        configured = self._options.get("confirmations") or {}
        value = configured.get(currency, settings.PAYMENTS_CRYPTO_CONFIRMATIONS.get(currency, 1))
        return int(value)

    def _policy_table(self, currency: str) -> dict[str, int]:
        override = (self._options.get("speed_policy_confirmations") or {}).get(currency)
        return override or DEFAULT_POLICY_CONFIRMATIONS.get(currency, {})

    def speed_policy_for(self, currency: str) -> str | None:
        """The weakest policy that waits for the depth we require, or None if none does."""
        needed = self.confirmations_needed(currency)
        table = self._policy_table(currency)
        for policy in SPEED_POLICIES:
            if policy in table and table[policy] >= needed:
                return policy
        return None

    def _payment_method_id(self, currency: str) -> str:
        return (self._options.get("payment_method_ids") or {}).get(currency, f"{currency}-CHAIN")

    def _payout_method_id(self, currency: str, network: str) -> str:
        configured = self._options.get("payout_method_ids") or {}
        return configured.get(f"{currency}:{network}", f"{currency}-CHAIN")

    # --- HTTP -----------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs):
        """One Greenfield call → (status code, JSON body or None). Refused credentials mean the
        call did nothing: ProviderUnavailable (never with the key in the message)."""
        response = self._request(method, path, headers=self._headers(), **kwargs)
        if response.status_code in (401, 403):
            code = ""
            try:
                body = response.json()
                code = body.get("code", "") if isinstance(body, dict) else ""
            except ValueError:
                pass
            raise ProviderUnavailable(
                f"{self.provider.code} refused our API key ({response.status_code} {code}).",
                provider=self.provider.code,
                status=response.status_code,
            )
        if response.status_code == 404:
            return 404, None
        return response.status_code, self._json(response)

    def _get_invoice(self, invoice_id: str) -> dict | None:
        status, body = self._call("GET", f"{self._store_path()}/invoices/{invoice_id}")
        if status == 404:
            return None
        if status != 200 or not isinstance(body, dict):
            raise ProviderTimeout(
                f"{self.provider.code} answered {status} to an invoice read.",
                provider=self.provider.code,
            )
        return body

    def _get_payment_methods(self, invoice_id: str) -> list:
        status, body = self._call(
            "GET", f"{self._store_path()}/invoices/{invoice_id}/payment-methods"
        )
        if status != 200 or not isinstance(body, list):
            raise ProviderTimeout(
                f"{self.provider.code} answered {status} to a payment-methods read.",
                provider=self.provider.code,
            )
        return body

    def _find_invoices(self, reference: str) -> list:
        status, body = self._call(
            "GET", f"{self._store_path()}/invoices", params={"orderId": reference}
        )
        if status != 200 or not isinstance(body, list):
            raise ProviderTimeout(
                f"{self.provider.code} answered {status} to an invoice search.",
                provider=self.provider.code,
            )
        return [invoice for invoice in body if isinstance(invoice, dict)]

    # --- reading invoices -----------------------------------------------------------------------

    def invoice_result(
        self, invoice: dict, payment_methods: list | None, *, currency: str = ""
    ) -> ProviderResult:
        """What an invoice and its payment methods say, in our vocabulary. Raises
        MalformedWebhook on an answer we cannot read (wrong currency, bad amounts)."""
        if not isinstance(invoice, dict):
            raise MalformedWebhook("the invoice is not an object")
        invoice_id = _text(invoice, "id")
        invoice_currency = _text(invoice, "currency")
        if currency and invoice_currency != currency:
            raise MalformedWebhook(
                f"invoice {invoice_id} is in {invoice_currency!r}, the deposit in {currency}"
            )
        status = invoice.get("status")
        additional = invoice.get("additionalStatus") or "None"
        checkout = invoice.get("checkout") if isinstance(invoice.get("checkout"), dict) else {}
        common = {
            "provider_reference": invoice_id,
            "redirect_url": invoice.get("checkoutLink") or "",
        }
        if status == "Invalid":
            if additional == "Marked":
                return ProviderResult(status=CANCELLED, **common)
            return ProviderResult(
                status=FAILED, decline_code="invoice-invalid", decline_kind="hard", **common
            )
        if status not in ("Settled", "Expired") or payment_methods is None:
            # New (even partly paid: more may come), Processing (paid in full, confirming), or
            # a status we do not know.
            return ProviderResult(
                status=PENDING, is_awaiting_confirmation=status == "Processing", **common
            )

        settled, in_flight, deep_enough = self._tally(
            payment_methods, invoice_currency, checkout.get("speedPolicy")
        )
        if status == "Settled":
            # Marked settled by hand with nothing settled on chain: nothing to credit.
            if settled > 0 and deep_enough:
                return ProviderResult(status=SUCCEEDED, amount_received=settled, **common)
            return ProviderResult(status=PENDING, is_awaiting_confirmation=settled > 0, **common)
        # Expired: the checkout is closed, so what settled is all that will come, unless a
        # payment is still confirming (wait for it: its InvoicePaymentSettled will come).
        if in_flight or (settled > 0 and not deep_enough):
            return ProviderResult(status=PENDING, is_awaiting_confirmation=True, **common)
        if settled > 0:
            return ProviderResult(
                status=SUCCEEDED,
                amount_received=settled,
                is_late=additional == "PaidLate",
                **common,
            )
        return ProviderResult(status=EXPIRED, **common)

    def _tally(self, payment_methods, invoice_currency: str, speed_policy) -> tuple:
        """(settled net amount in the invoice currency, any payment still confirming,
        whether the invoice's policy waits deep enough for every currency paid in)."""
        exponent_unit = minor_unit(invoice_currency)
        settled = Decimal(0)
        in_flight = False
        deep_enough = True
        if not isinstance(payment_methods, list):
            raise MalformedWebhook("payment methods are not a list")
        for method in payment_methods:
            if not isinstance(method, dict):
                raise MalformedWebhook("a payment method is not an object")
            payments = method.get("payments") or []
            if not isinstance(payments, list):
                raise MalformedWebhook("payments are not a list")
            if not payments:
                continue
            method_currency = _text(method, "currency")
            rate = parse_decimal(method.get("rate"))
            for payment in payments:
                if not isinstance(payment, dict):
                    raise MalformedWebhook("a payment is not an object")
                payment_status = payment.get("status")
                if payment_status == "Processing":
                    in_flight = True
                    continue
                if payment_status != "Settled":
                    continue  # Invalid: replaced or double-spent, never counts
                value = parse_decimal(payment.get("value"))
                fee = parse_decimal(payment.get("fee") or "0")
                settled += (value - fee) * rate
                table = self._policy_table(method_currency)
                if table.get(speed_policy, -1) < self.confirmations_needed(method_currency):
                    deep_enough = False
        # Never credit a fraction of the minor unit that did not arrive.
        return settled.quantize(exponent_unit, rounding=ROUND_DOWN), in_flight, deep_enough

    def _instructions(self, invoice: dict, payment_methods: list) -> dict:
        instructions = {}
        if invoice.get("expirationTime") is not None:
            instructions["expiration_time"] = invoice["expirationTime"]
        for method in payment_methods:
            if isinstance(method, dict) and method.get("destination"):
                instructions.update(
                    {
                        "address": method["destination"],
                        "payment_method": method.get("paymentMethodId", ""),
                        "amount_due": method.get("due", ""),
                        "currency": method.get("currency", ""),
                        "payment_link": method.get("paymentLink") or "",
                    }
                )
                break
        return instructions

    def _declined(self, status: int, body, *, creating: str) -> ProviderResult:
        """A 4xx answer to a create call → a failed result with the decline code."""
        code = "invalid-request"
        if status == 422:
            errors = body if isinstance(body, list) else []
            paths = {str(e.get("path", "")).lower() for e in errors if isinstance(e, dict)}
            code = "invalid-destination" if "destination" in paths else "invalid-request"
        elif isinstance(body, dict):
            code = str(body.get("code") or "generic-error")[:64]
            message = str(body.get("message") or "")
            if code == "generic-error" and creating == "invoice":
                if message.startswith("Error retrieving a matching payment method or rate"):
                    code = "payment-method-or-rate-unavailable"
                elif message.startswith("No wallet has been linked"):
                    code = "no-wallet"
        return ProviderResult(
            status=FAILED, decline_code=code, decline_kind=self.decline_kind(code)
        )

    # --- deposits -------------------------------------------------------------------------------

    def start_payment(self, *, deposit, notify_url, return_url, payment_method=None):
        """Create the invoice. `notify_url` is not sent: Greenfield has no per-invoice
        notification URL, the store's webhook (pointed at our endpoint) delivers events."""
        currency = deposit.currency_id
        policy = self.speed_policy_for(currency)
        if policy is None:
            log.error(
                "%s: no speed policy waits for %s %s confirmations; no invoice created",
                self.provider.code,
                self.confirmations_needed(currency),
                currency,
            )
            return ProviderResult(
                status=FAILED, decline_code="confirmations-unattainable", decline_kind="hard"
            )
        minutes = max(1, -(-self.provider.deposit_timeout_seconds // 60))
        status, body = self._call(
            "POST",
            f"{self._store_path()}/invoices",
            json={
                "amount": money(deposit.amount, currency),
                "currency": currency,
                "metadata": {"orderId": deposit.reference},
                "checkout": {
                    "speedPolicy": policy,
                    "paymentMethods": [self._payment_method_id(currency)],
                    "expirationMinutes": minutes,
                    "redirectURL": return_url,
                    "lazyPaymentMethods": False,
                    "paymentTolerance": 0,
                },
            },
        )
        if status != 200:
            return self._declined(status, body, creating="invoice")
        try:
            _check_order(body, deposit.reference)
            invoice_id = _text(body, "id")
            try:
                methods = self._get_payment_methods(invoice_id)
            except (ProviderTimeout, ProviderUnavailable):
                # The invoice exists; its address shows on the checkout page anyway.
                methods = []
            result = self.invoice_result(body, methods or None, currency=currency)
        except MalformedWebhook as exc:
            raise ProviderTimeout(
                f"{self.provider.code} answered an invoice we cannot read: {exc}",
                provider=self.provider.code,
            ) from exc
        return replace(result, instructions=self._instructions(body, methods))

    def _deposit_invoice(self, deposit) -> dict | None:
        """The invoice of a deposit: by id when we have it, else searched by our reference
        (several only if someone created more by hand: the one furthest along wins)."""
        if deposit.provider_reference:
            return self._get_invoice(deposit.provider_reference)
        found = [
            i for i in self._find_invoices(deposit.reference) if _order_id(i) == deposit.reference
        ]
        if not found:
            return None
        rank = {"Settled": 0, "Processing": 1, "Expired": 2, "New": 3, "Invalid": 4}
        return min(found, key=lambda i: rank.get(i.get("status"), 5))

    def _deposit_result(self, deposit, invoice: dict) -> ProviderResult:
        try:
            _check_order(invoice, deposit.reference)
            methods = None
            if invoice.get("status") in ("Settled", "Expired"):
                methods = self._get_payment_methods(_text(invoice, "id"))
            return self.invoice_result(invoice, methods, currency=deposit.currency_id)
        except MalformedWebhook as exc:
            # The janitor must not stop on one unreadable answer: treat it as no answer.
            raise ProviderTimeout(
                f"{self.provider.code} answered an invoice we cannot read: {exc}",
                provider=self.provider.code,
            ) from exc

    def fetch_payment_status(self, *, deposit):
        invoice = self._deposit_invoice(deposit)
        return None if invoice is None else self._deposit_result(deposit, invoice)

    def cancel_payment(self, *, deposit):
        """Mark an invoice Invalid while its checkout is still open and nothing was paid.
        An Expired invoice is left alone: BTCPay has closed its checkout already, and a payment
        sent to its address afterwards must still reach the paid-late path and be credited;
        an invoice with a payment in flight is reported as it is."""
        invoice = self._deposit_invoice(deposit)
        if invoice is None:
            return None
        if invoice.get("status") == "New" and _is_zero(invoice.get("paidAmount")):
            status, body = self._call(
                "POST",
                f"{self._store_path()}/invoices/{_text(invoice, 'id')}/status",
                json={"status": "Invalid"},
            )
            if status == 200 and isinstance(body, dict):
                invoice = body
            else:
                # Refused (422): it moved on meanwhile (a payment arrived); report what it is.
                invoice = self._get_invoice(_text(invoice, "id")) or invoice
        return self._deposit_result(deposit, invoice)

    # --- payouts --------------------------------------------------------------------------------

    def payout_result(self, payout: dict) -> ProviderResult:
        if not isinstance(payout, dict):
            raise MalformedWebhook("the payout is not an object")
        state = payout.get("state")
        status = _PAYOUT_STATES.get(state, PENDING)
        failed = status == FAILED
        return ProviderResult(
            status=status,
            provider_reference=_text(payout, "id"),
            decline_code="payout-cancelled" if failed else "",
            decline_kind="hard" if failed else "",
        )

    def start_payout(self, *, withdrawal, notify_url):
        instrument = withdrawal.instrument
        currency = withdrawal.currency_id
        status, body = self._call(
            "POST",
            f"{self._store_path()}/payouts",
            json={
                "destination": instrument.identifier,
                "amount": money(withdrawal.amount, currency),
                "payoutMethodId": self._payout_method_id(currency, instrument.network),
                "approved": bool(self._options.get("approve_payouts", True)),
                "metadata": {"orderId": withdrawal.reference, "source": "casino withdrawal"},
            },
        )
        if status != 200:
            return self._declined(status, body, creating="payout")
        try:
            return self.payout_result(body)
        except MalformedWebhook as exc:
            raise ProviderTimeout(
                f"{self.provider.code} answered a payout we cannot read: {exc}",
                provider=self.provider.code,
            ) from exc

    def _get_payout(self, payout_id: str) -> dict | None:
        status, body = self._call("GET", f"{self._store_path()}/payouts/{payout_id}")
        if status == 404:
            return None
        if status != 200 or not isinstance(body, dict):
            raise ProviderTimeout(
                f"{self.provider.code} answered {status} to a payout read.",
                provider=self.provider.code,
            )
        return body

    def fetch_payout_status(self, *, withdrawal):
        """By payout id when the create call answered; else the store's payouts (cancelled
        ones included) searched for our reference in `metadata.orderId`: Greenfield cannot
        filter payouts by metadata."""
        if withdrawal.provider_reference:
            payout = self._get_payout(withdrawal.provider_reference)
        else:
            status, body = self._call(
                "GET", f"{self._store_path()}/payouts", params={"includeCancelled": "true"}
            )
            if status != 200 or not isinstance(body, list):
                raise ProviderTimeout(
                    f"{self.provider.code} answered {status} to a payout search.",
                    provider=self.provider.code,
                )
            payout = next(
                (p for p in body if isinstance(p, dict) and _order_id(p) == withdrawal.reference),
                None,
            )
        if payout is None:
            return None
        try:
            return self.payout_result(payout)
        except MalformedWebhook as exc:
            raise ProviderTimeout(str(exc), provider=self.provider.code) from exc

    # --- webhooks -------------------------------------------------------------------------------

    def verify_webhook(self, *, body, headers):
        try:
            received = headers.get("btcpay-sig", "")
            if not isinstance(received, str) or not received:
                raise InvalidSignature("BTCPay-Sig is missing.")
            scheme, sep, digest = received.strip().partition("=")
            if scheme != "sha256" or not sep or len(digest) != 64:
                raise InvalidSignature("BTCPay-Sig is not sha256=<64 hex digits>.")
            if not self.webhook_secret:
                raise InvalidSignature("No webhook secret is configured for this store.")
            expected = hmac_sha256(self.webhook_secret, bytes(body))
            # BTCPay writes lower-case hex; compare case-insensitively in constant time.
            if not signatures_match(expected, digest.lower()):
                raise InvalidSignature("BTCPay-Sig does not match the body.")
        except InvalidSignature:
            raise
        except Exception as exc:  # whatever the bytes, a bad delivery is only ever refused
            raise InvalidSignature(f"Unreadable delivery: {type(exc).__name__}") from None

    def parse_webhook(self, *, body, headers):
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedWebhook(f"not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise MalformedWebhook("the body is not a JSON object")
        kind = _text(payload, "type")
        delivery = _text(payload, "deliveryId")
        # A redelivery (manual or automatic) is a new delivery id carrying the first one in
        # `originalDeliveryId` (WebhookSender.CreateRedeliveryRequest; the first delivery
        # names itself there). Keying on it applies one event once however often it is
        # resent; both ids are inside the signed body. Old servers spelt it
        # `orignalDeliveryId`.
        original = payload.get("originalDeliveryId") or payload.get("orignalDeliveryId")
        event_id = original if isinstance(original, str) and original else delivery
        store = payload.get("storeId")
        if store is not None and store != self.provider.merchant_id:
            raise MalformedWebhook(f"event of store {store!r}, not of this provider's store")
        dedup_key = f"btcpay:{event_id}"
        if kind in _INVOICE_EVENTS:
            return [self._invoice_event(payload, kind, dedup_key)]
        if kind in _PAYOUT_EVENTS:
            return [self._payout_event(payload, kind, dedup_key)]
        return []

    def _invoice_event(self, payload: dict, kind: str, dedup_key: str) -> ProviderEvent:
        invoice_id = _text(payload, "invoiceId")
        invoice = self._get_invoice(invoice_id)
        if invoice is None:
            raise MalformedWebhook(f"invoice {invoice_id} is unknown to the store")
        if _text(invoice, "id") != invoice_id:
            raise MalformedWebhook(f"asked for invoice {invoice_id}, got another")
        methods = None
        if invoice.get("status") in ("Settled", "Expired"):
            methods = self._get_payment_methods(invoice_id)
        return ProviderEvent(
            subject=DEPOSIT,
            event_type=kind,
            dedup_key=dedup_key,
            reference=_order_id(invoice),
            provider_reference=invoice_id,
            result=self.invoice_result(invoice, methods),
        )

    def _payout_event(self, payload: dict, kind: str, dedup_key: str) -> ProviderEvent:
        payout_id = _text(payload, "payoutId")
        payout = self._get_payout(payout_id)
        if payout is None:
            raise MalformedWebhook(f"payout {payout_id} is unknown to the store")
        result = self.payout_result(payout)
        return ProviderEvent(
            subject=WITHDRAWAL,
            event_type=f"{kind} {payout.get('state', '')}".strip(),
            dedup_key=dedup_key,
            reference=_order_id(payout),
            provider_reference=payout_id,
            result=result,
        )


def _text(obj: dict, name: str) -> str:
    value = obj.get(name) if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value:
        raise MalformedWebhook(f"{name} is missing or not a string")
    return value


def _order_id(obj: dict) -> str:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    order_id = metadata.get("orderId") if isinstance(metadata, dict) else None
    return order_id if isinstance(order_id, str) else ""


def _check_order(invoice: dict, reference: str) -> None:
    if _order_id(invoice) != reference:
        raise MalformedWebhook(f"the invoice belongs to order {_order_id(invoice)!r}")


def _is_zero(value) -> bool:
    try:
        return parse_decimal(value) == 0 if value is not None else True
    except MalformedWebhook:
        return False
