"""Adyen, cards: Checkout API v71 and the Standard webhook ("notifications").

Protocol (https://docs.adyen.com/api-explorer/Checkout/71/overview):
- `POST /v71/payments` with `X-API-Key` and our deposit reference as `Idempotency-Key`.
  The answer's `resultCode` is final (`Authorised`, `Refused`, `Cancelled`, `Error`) or asks
  the shopper to act (`RedirectShopper`, `IdentifyShopper`, `ChallengeShopper`: an `action`
  whose `type: redirect` URL is our `redirect_url`, the 3-D Secure page). `pspReference` is
  the payment's id at Adyen, our `Deposit.provider_reference` (reconciliation matches the
  settlement report's "Psp Reference" on it).
- `POST /v71/payments/{pspReference}/refunds` and `POST /v71/payments/{pspReference}/cancels`
  (or `POST /v71/cancels` by our reference when we never learnt the pspReference) answer
  `status: received`; the outcome arrives by notification (REFUND, CANCELLATION,
  TECHNICAL_CANCEL).
- Adyen has no endpoint that tells a payment's status: `fetch_payment_status` and
  `fetch_refund_status` return None ("cannot ask"), the notification is the source of truth
  (Adyen retries an unacknowledged one for days), and an expired deposit is cancelled at
  Adyen by our reference (`cancel_payment`) so a late 3-D Secure can no longer charge.
- Payouts: not offered (`supports_payouts = False`). Adyen's Payout API (`/pal/servlet/
  Payout/v68/payout`, `submitThirdParty`) takes no new integrations; card payouts moved to the
  Transfers API of Adyen's balance platform, another API with other credentials and webhooks.
  Withdrawals go to a provider that pays out (docs/providers/adyen.md).

Standard webhook (https://docs.adyen.com/development-resources/webhooks/verify-hmac-signatures):
a JSON batch `{"live", "notificationItems": [{"NotificationRequestItem": {...}}]}`; each item
carries `additionalData.hmacSignature` = base64(HMAC-SHA256(hex-decoded key,
"pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:
eventCode:success")). Only those eight fields are signed: everything else (`reason`, all of
`additionalData`) is informational here and never decides money, identity or deduplication.
Every item must verify, or the whole delivery is refused. Optional Basic authentication on the
endpoint (`options.webhook_username` + password). We answer `[accepted]`.

Events we act on: AUTHORISATION, CANCELLATION, TECHNICAL_CANCEL, OFFER_CLOSED, PENDING, REFUND,
REFUND_FAILED and the dispute events (NOTIFICATION_OF_CHARGEBACK, REQUEST_FOR_INFORMATION,
CHARGEBACK, CHARGEBACK_REVERSED, SECOND_CHARGEBACK, PREARBITRATION_WON, PREARBITRATION_LOST and
the other dispute-process codes, which report a dispute NOTIFIED). Every other event code
(REPORT_AVAILABLE, RECURRING_CONTRACT, CAPTURE …) yields no event: nothing to apply.

Decline codes: `refusalReasonCode` (the webhook carries only the `refusalReason` text, mapped
back to its code), sorted soft/hard from Adyen's refusal reasons and raw acquirer responses,
https://docs.adyen.com/development-resources/refusal-reasons and
https://docs.adyen.com/development-resources/raw-acquirer-responses (see `REFUSAL_REASONS`).
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
from datetime import datetime

from wallets.errors import UnknownCurrency

from .base import (
    CANCELLED,
    DEPOSIT,
    DISPUTE,
    DISPUTE_CHARGEBACK,
    DISPUTE_LOST,
    DISPUTE_NOTIFIED,
    DISPUTE_REVERSED,
    EXPIRED,
    FAILED,
    PENDING,
    REFUND,
    SUCCEEDED,
    DisputeInfo,
    InvalidSignature,
    MalformedWebhook,
    PayerInstrument,
    PaymentAdapter,
    ProviderEvent,
    ProviderResult,
    ProviderTimeout,
    ProviderUnavailable,
    WebhookAck,
    from_minor_units,
    provider_secret,
    signatures_match,
    to_minor_units,
)

log = logging.getLogger(__name__)

CHECKOUT_VERSION = "v71"

# The eight signed fields, in the order Adyen concatenates them.
SIGNED_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)

# refusalReasonCode → (refusalReason, soft?). Soft: the issuer or the network could not decide
# now, or the card lacked funds or authentication; a retry (later, or through another acquirer)
# may be approved. Hard: the card, the shopper or the risk checks refuse, or the request was
# wrong; retrying gains nothing and costs scheme retry fees. Code 2 ("Refused") is what Adyen
# maps the issuer's generic "05 do not honor" to, which the schemes class as retryable.
REFUSAL_REASONS: dict[str, tuple[str, bool]] = {
    "2": ("Refused", True),
    "3": ("Referral", False),
    "4": ("Acquirer Error", True),
    "5": ("Blocked Card", False),
    "6": ("Expired Card", False),
    "7": ("Invalid Amount", False),
    "8": ("Invalid Card Number", False),
    "9": ("Issuer Unavailable", True),
    "10": ("Not supported", False),
    "11": ("3D Not Authenticated", False),
    "12": ("Not enough balance", True),
    "14": ("Acquirer Fraud", False),
    "15": ("Cancelled", False),
    "16": ("Shopper Cancelled", False),
    "17": ("Invalid Pin", False),
    "18": ("Pin tries exceeded", False),
    "19": ("Pin validation not possible", False),
    "20": ("FRAUD", False),
    "21": ("Not Submitted", False),
    "22": ("FRAUD-CANCELLED", False),
    "23": ("Transaction Not Permitted", False),
    "24": ("CVC Declined", False),
    "25": ("Restricted Card", False),
    "26": ("Revocation Of Auth", False),
    "27": ("Declined Non Generic", False),
    "28": ("Withdrawal amount exceeded", True),
    "29": ("Withdrawal count exceeded", True),
    "31": ("Issuer Suspected Fraud", False),
    "32": ("AVS Declined", False),
    "33": ("Card requires online pin", False),
    "34": ("No checking account available on Card", False),
    "35": ("No savings account available on Card", False),
    "36": ("Mobile pin required", False),
    "37": ("Contactless fallback", False),
    "38": ("Authentication required", True),
    "39": ("RReq not received from DS", True),
    "40": ("Current AID is in Penalty Box", False),
    "41": ("CVM Required Restart Payment", False),
    "42": ("3DS Authentication Error", True),
    "43": ("Online PIN required", False),
    "44": ("Try another interface", False),
    "45": ("Chip downgrade mode", False),
    # Adyen blocks retries that would cost excessive scheme fees: never retry this one.
    "46": ("Transaction blocked by Adyen to prevent excessive retry fees", False),
}
_CODE_BY_REASON = {text.lower(): code for code, (text, _) in REFUSAL_REASONS.items()}

# /payments resultCode → our status. Anything not listed (a code added after v71) is PENDING:
# we never credit or fail on a result we do not understand.
_RESULT_CODES = {
    "Authorised": SUCCEEDED,
    "Refused": FAILED,
    "Error": FAILED,
    "Cancelled": CANCELLED,
    "Pending": PENDING,
    "Received": PENDING,
    "RedirectShopper": PENDING,
    "IdentifyShopper": PENDING,
    "ChallengeShopper": PENDING,
    "PresentToShopper": PENDING,
    "AuthenticationFinished": PENDING,
    "AuthenticationNotRequired": PENDING,
    # We never ask for partial authorisation (`allowPartialAuth`); should one come, an
    # operator decides rather than an automatic credit of part of the deposit.
    "PartiallyAuthorised": PENDING,
}

# Dispute notifications → what happened to the money. All events of one dispute share its
# pspReference; the second stage (second chargeback, then pre-arbitration) is booked under
# "<pspReference>:2" because our chargeback rows are one per reference and the first stage
# may already be reversed when the second chargeback takes the money again.
_DISPUTE_ACTIONS = {
    "CHARGEBACK": (DISPUTE_CHARGEBACK, ""),
    "CHARGEBACK_REVERSED": (DISPUTE_REVERSED, ""),
    "SECOND_CHARGEBACK": (DISPUTE_CHARGEBACK, ":2"),
    "PREARBITRATION_WON": (DISPUTE_REVERSED, ":2"),
    "PREARBITRATION_LOST": (DISPUTE_LOST, ":2"),
}
_DISPUTE_NOTICES = frozenset(
    {
        "NOTIFICATION_OF_CHARGEBACK",
        "REQUEST_FOR_INFORMATION",
        "NOTIFICATION_OF_FRAUD",
        "DISPUTE_OPENED_WITH_CHARGEBACK",
        "DISPUTE_DEFENSE_PERIOD_ENDED",
        "INFORMATION_SUPPLIED",
        "ISSUER_COMMENTS",
        "ISSUER_RESPONSE_TIMEFRAME_EXPIRED",
        "PREARBITRATION_OPEN",
        "PREARBITRATION_DECLINED",
        "PREARBITRATION_ISSUER_WITHDRAWN",
        "SCHEME_ARBITRATION_WON",
        "SCHEME_ARBITRATION_LOST",
    }
)
_CANCELS = frozenset({"CANCELLATION", "TECHNICAL_CANCEL"})
_REFUNDS = frozenset({"REFUND", "REFUND_FAILED"})

# Adyen's published test cards go unencrypted in its test environment with this prefix;
# the live environment refuses them, and we never send one to a live endpoint.
TEST_CARD_PREFIX = "test_"


def signing_string(item: dict) -> str:
    """The text Adyen signs for one NotificationRequestItem. Raises ValueError when a signed
    field is not the type Adyen sends (strings, the amount value an integer): such an item
    cannot have come from Adyen, and str() of it would not be what Adyen signed."""
    amount = item.get("amount")
    if not isinstance(amount, dict):
        raise ValueError("amount is not an object")
    value = amount.get("value")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("amount.value is not an integer")
    fields = {**item, "value": str(value), "currency": amount.get("currency", "")}
    parts = []
    for name in SIGNED_FIELDS:
        part = fields.get(name, "")
        if part is None:
            part = ""
        if not isinstance(part, str):
            raise ValueError(f"{name} is not a string")
        parts.append(part)
    return ":".join(parts)


def item_signature(item: dict, hmac_key_hex: str) -> str:
    """base64 HMAC-SHA256 of `signing_string(item)` under the hex-encoded key."""
    key = binascii.unhexlify(hmac_key_hex)
    digest = hmac.new(key, signing_string(item).encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _is_live_endpoint(url: str) -> bool:
    return "-live" in url or "adyenpayments.com" in url


class AdyenConnector(PaymentAdapter):
    protocol = "adyen"
    webhook_content_types = ("application/json",)
    soft_declines = frozenset(code for code, (_, soft) in REFUSAL_REASONS.items() if soft)
    supports_payouts = False
    supports_cancel = True

    # --- outgoing calls ----------------------------------------------------------------------

    def _headers(self, idempotency_key: str) -> dict:
        return {"X-API-Key": self.api_key, "Idempotency-Key": idempotency_key}

    def _call(self, path: str, body: dict, *, idempotency_key: str) -> tuple[int, dict]:
        """POST to the Checkout API. 401/403 (credentials, merchant account) and 429 mean Adyen
        refused to process anything: the payment does not exist, as if never sent. Any other
        4xx comes back with Adyen's error body (the request was refused, nothing was made)."""
        response = self._request(
            "POST",
            f"{CHECKOUT_VERSION}/{path}",
            json=body,
            headers=self._headers(idempotency_key),
        )
        if response.status_code in (401, 403, 429):
            raise ProviderUnavailable(
                f"{self.provider.code} refused the request ({response.status_code}): check the "
                "API key, its roles and the merchant account.",
                provider=self.provider.code,
                status=response.status_code,
            )
        data = self._json(response)
        if not isinstance(data, dict):
            raise ProviderTimeout(
                f"{self.provider.code} answered {response.status_code} with JSON that is not "
                "an object.",
                provider=self.provider.code,
            )
        return response.status_code, data

    @staticmethod
    def _error_result(data: dict) -> ProviderResult:
        """A refused request (Adyen's error body `status/errorCode/message/errorType`)."""
        code = str(data.get("errorCode") or "unknown")[:50]
        log.warning("adyen refused a request: %s %s", code, str(data.get("message"))[:200])
        return ProviderResult(status=FAILED, decline_code=f"error_{code}", decline_kind="hard")

    def _payment_method(self, payment_method: dict | None) -> dict | None:
        """What the casino's Drop-in / Card Component produced (encrypted card fields or a
        `storedPaymentMethodId`), passed through untouched and never stored. Without it, and
        only against a test endpoint, the configured test card goes unencrypted with Adyen's
        `test_` prefix."""
        if payment_method:
            return payment_method
        test_card = str(self.provider.options.get("test_card") or "")
        if not test_card or _is_live_endpoint(self.provider.api_base_url):
            return None
        month, year = str(self.provider.options.get("test_card_expiry") or "03/2030").split("/")
        return {
            "type": "scheme",
            "encryptedCardNumber": TEST_CARD_PREFIX + test_card,
            "encryptedExpiryMonth": TEST_CARD_PREFIX + month,
            "encryptedExpiryYear": TEST_CARD_PREFIX + year,
            "encryptedSecurityCode": TEST_CARD_PREFIX
            + str(self.provider.options.get("test_card_cvc") or "737"),
        }

    def start_payment(
        self, *, deposit, notify_url: str, return_url: str, payment_method: dict | None = None
    ) -> ProviderResult:
        # `notify_url` has no place in Adyen's API: the Standard webhook's URL is set once per
        # merchant account in the Customer Area (docs/providers/adyen.md).
        method = self._payment_method(payment_method)
        if method is None:
            return ProviderResult(
                status=FAILED, decline_code="payment_method_required", decline_kind="hard"
            )
        options = self.provider.options
        body = {
            "amount": {
                "value": to_minor_units(deposit.amount, deposit.currency_id),
                "currency": deposit.currency_id,
            },
            "reference": deposit.reference,
            "merchantAccount": self.provider.merchant_id,
            "returnUrl": return_url,
            "shopperReference": deposit.player.external_id,
            "shopperInteraction": "Ecommerce",
            "channel": "Web",
            "paymentMethod": method,
            # Redirect 3-D Secure: its URL becomes the deposit's redirect_url, so the cashier
            # needs no Adyen script to authenticate.
            "authenticationData": {
                "attemptAuthentication": options.get("attempt_authentication", "always"),
                "threeDSRequestData": {"nativeThreeDS": "disabled"},
            },
        }
        if deposit.ip:
            body["shopperIP"] = deposit.ip
        status, data = self._call("payments", body, idempotency_key=deposit.reference)
        if status >= 400:
            return self._error_result(data)
        return self._payment_result(data, currency=deposit.currency_id)

    def submit_payment_details(self, *, deposit, details: dict) -> ProviderResult:
        """`POST /payments/details` with what Adyen appended to the return URL
        (`{"redirectResult": …}`) when the shopper came back from 3-D Secure."""
        status, data = self._call(
            "payments/details",
            {"details": details},
            idempotency_key=f"{deposit.reference}:details",
        )
        if status >= 400:
            return self._error_result(data)
        return self._payment_result(data, currency=deposit.currency_id)

    def _payment_result(self, data: dict, *, currency: str) -> ProviderResult:
        result_code = data.get("resultCode")
        status = (
            _RESULT_CODES.get(result_code, PENDING) if isinstance(result_code, str) else PENDING
        )
        additional = data.get("additionalData")
        additional = additional if isinstance(additional, dict) else {}
        amount_received = None
        if status == SUCCEEDED:
            amount_received, status = self._authorised_amount(data.get("amount"), currency)
        redirect_url, instructions = self._action(data.get("action"))
        decline_code = ""
        if status == FAILED:
            decline_code = self._decline_code(
                data.get("refusalReasonCode"), data.get("refusalReason"), result_code
            )
        reference = data.get("pspReference")
        return ProviderResult(
            status=status,
            provider_reference=reference if isinstance(reference, str) else "",
            redirect_url=redirect_url,
            instructions=instructions,
            amount_received=amount_received,
            decline_code=decline_code,
            decline_kind=self.decline_kind(decline_code),
            **self._payer(additional),
        )

    @staticmethod
    def _authorised_amount(amount, currency: str):
        """The amount Adyen says it authorised, checked against the deposit's currency. One in
        another currency is not something we can credit: leave the deposit open (PENDING)."""
        if not isinstance(amount, dict):
            return None, SUCCEEDED
        if amount.get("currency") != currency:
            log.error(
                "adyen authorised %r in %r for a %s deposit: left open",
                amount.get("value"),
                amount.get("currency"),
                currency,
            )
            return None, PENDING
        try:
            return from_minor_units(amount.get("value"), currency), SUCCEEDED
        except MalformedWebhook:
            return None, PENDING

    @staticmethod
    def _action(action) -> tuple[str, dict]:
        """A `redirect` action is the shopper's 3-D Secure page. A POST redirect (some issuers'
        ACS) cannot be a plain link: its form fields go to `instructions` for the cashier.
        Other actions (native 3-D Secure, QR codes, vouchers) are handed to the casino's
        Drop-in as they are (`instructions.action`)."""
        if not isinstance(action, dict):
            return "", {}
        url = action.get("url") if isinstance(action.get("url"), str) else ""
        if action.get("type") == "redirect" and url:
            method = str(action.get("method") or "GET").upper()
            if method == "GET":
                return url, {}
            return url, {"redirect": {"method": method, "url": url, "data": action.get("data")}}
        return "", {"action": action}

    def _decline_code(self, code, reason, result_code) -> str:
        if isinstance(code, str) and code in REFUSAL_REASONS:
            return code
        if isinstance(reason, str):
            known = _CODE_BY_REASON.get(reason.strip().lower())
            if known:
                return known
            if reason.strip():
                return reason.strip()[:64]
        return str(result_code or "Refused")[:64]

    @staticmethod
    def _payer(additional: dict) -> dict:
        """The card alias: Adyen's stable stand-in for the card number, the same for every
        payment with that card (https://docs.adyen.com/unified-commerce/collect-data)."""
        alias = additional.get("alias")
        holder = additional.get("cardHolderName")
        return {
            "payer_instrument": PayerInstrument.of("card", alias),
            "payer_name": holder.strip()[:140] if isinstance(holder, str) else "",
        }

    def refund(self, *, refund, notify_url: str) -> ProviderResult:
        deposit = refund.deposit
        if not deposit.provider_reference:
            return ProviderResult(
                status=FAILED, decline_code="missing_psp_reference", decline_kind="hard"
            )
        status, data = self._call(
            f"payments/{deposit.provider_reference}/refunds",
            {
                "merchantAccount": self.provider.merchant_id,
                "amount": {
                    "value": to_minor_units(refund.amount, deposit.currency_id),
                    "currency": deposit.currency_id,
                },
                "reference": refund.reference,
            },
            idempotency_key=refund.reference,
        )
        if status >= 400:
            return self._error_result(data)
        # `status: received`: the REFUND notification says whether the money went back. The
        # refund's own pspReference is what the settlement report names it by.
        psp = data.get("pspReference")
        return ProviderResult(
            status=PENDING, provider_reference=psp if isinstance(psp, str) else ""
        )

    def cancel_payment(self, *, deposit) -> ProviderResult | None:
        """Cancel by pspReference when we have it, else a technical cancel by our reference
        (`/cancels`, which works even for a payment whose answer we never received). Adyen
        only says `received`: what the payment becomes arrives as a CANCELLATION or
        TECHNICAL_CANCEL notification (success false: it was already captured, so it stands,
        and its AUTHORISATION credits the deposit even after expiry)."""
        body = {"merchantAccount": self.provider.merchant_id, "reference": deposit.reference}
        if deposit.provider_reference:
            path = f"payments/{deposit.provider_reference}/cancels"
        else:
            path = "cancels"
            body["paymentReference"] = deposit.reference
        status, data = self._call(path, body, idempotency_key=f"{deposit.reference}:cancel")
        if status >= 400:
            log.warning("adyen refused to cancel %s: %s", deposit.reference, data.get("message"))
            return None
        return ProviderResult(status=PENDING)

    def fetch_payment_status(self, *, deposit) -> ProviderResult | None:
        """Adyen's Checkout API has no payment status query: None (nothing to apply). The
        AUTHORISATION notification decides; the janitor expires the deposit at `expires_at`
        and cancels it at Adyen."""
        return None

    def fetch_refund_status(self, *, refund) -> ProviderResult | None:
        """No status query for modifications either: the REFUND notification decides."""
        return None

    def fetch_payout_status(self, *, withdrawal) -> ProviderResult | None:
        return None

    # --- webhooks ----------------------------------------------------------------------------

    def webhook_ack(self) -> WebhookAck:
        return WebhookAck(status=200, body=b"[accepted]", content_type="text/plain")

    def _webhook_password(self) -> str:
        return provider_secret(self.provider, "webhook_password")

    def _check_basic_auth(self, headers: dict) -> None:
        username = str(self.provider.options.get("webhook_username", ""))
        password = self._webhook_password()
        if not username and not password:
            return
        scheme, _, encoded = str(headers.get("authorization", "")).partition(" ")
        if scheme.lower() != "basic":
            raise InvalidSignature("Basic authentication is required.")
        try:
            presented = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeError):
            raise InvalidSignature("Authorization header is not Basic credentials.") from None
        if not signatures_match(f"{username}:{password}", presented):
            raise InvalidSignature("Basic authentication failed.")

    @staticmethod
    def _items(body: bytes) -> list[dict]:
        """The NotificationRequestItems of a delivery; ValueError on any other shape."""
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("the body is not a JSON object")
        wrappers = payload.get("notificationItems")
        if not isinstance(wrappers, list) or not wrappers:
            raise ValueError("notificationItems is missing or empty")
        items = []
        for wrapper in wrappers:
            item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
            if not isinstance(item, dict):
                raise ValueError("a notificationItems entry has no NotificationRequestItem")
            items.append(item)
        return items

    def verify_webhook(self, *, body: bytes, headers: dict[str, str]) -> None:
        self._check_basic_auth(headers)
        try:
            items = self._items(body)
        except (ValueError, RecursionError) as exc:
            raise InvalidSignature(f"Not an Adyen notification: {exc}.") from None
        key = str(self.webhook_secret or "")
        try:
            binascii.unhexlify(key)
        except (binascii.Error, ValueError):
            key = ""
        if not key:
            raise InvalidSignature("The provider's HMAC key is not set or is not hex.")
        for index, item in enumerate(items):
            additional = item.get("additionalData")
            received = additional.get("hmacSignature") if isinstance(additional, dict) else None
            if not isinstance(received, str) or not received:
                raise InvalidSignature(f"Item {index} carries no hmacSignature.")
            try:
                expected = item_signature(item, key)
            except ValueError as exc:
                raise InvalidSignature(f"Item {index} is malformed: {exc}.") from None
            if not signatures_match(expected, received):
                raise InvalidSignature(f"Item {index}'s hmacSignature does not match.")

    def parse_webhook(self, *, body: bytes, headers: dict[str, str]) -> list[ProviderEvent]:
        """One event per item we act on (see the module docstring); items for another merchant
        account (a company-level webhook sharing the HMAC key) are not ours and are skipped."""
        try:
            items = self._items(body)
        except (ValueError, RecursionError) as exc:
            raise MalformedWebhook(f"not an Adyen notification: {exc}") from None
        events = []
        merchant = self.provider.merchant_id
        for item in items:
            if merchant and item.get("merchantAccountCode") != merchant:
                log.warning(
                    "adyen notification for merchant account %r skipped",
                    item.get("merchantAccountCode"),
                )
                continue
            event = self._event(item)
            if event is not None:
                events.append(event)
        return events

    def _event(self, item: dict) -> ProviderEvent | None:
        code = item.get("eventCode")
        psp = item.get("pspReference")
        success = item.get("success")
        if not isinstance(code, str) or not isinstance(psp, str) or not psp:
            raise MalformedWebhook("an item has no eventCode or pspReference")
        if success not in ("true", "false"):
            raise MalformedWebhook(f"{code} {psp}: success is {success!r}")
        ok = success == "true"
        merchant_reference = _text(item.get("merchantReference"))
        original = _text(item.get("originalReference"))
        # Adyen resends an item with the same pspReference and eventCode; `success` is part of
        # the key so a later item that changes the outcome is applied, not dropped. All three
        # are signed.
        base = {
            "event_type": code,
            "dedup_key": f"{psp}:{code}:{success}",
            "reference": merchant_reference,
        }
        additional = item.get("additionalData")
        additional = additional if isinstance(additional, dict) else {}
        if code == "AUTHORISATION":
            return ProviderEvent(
                subject=DEPOSIT,
                provider_reference=psp,
                result=self._authorisation(ok, psp, item, additional),
                **base,
            )
        if code in _CANCELS:
            # pspReference is the cancel's own; originalReference the payment's. A failed
            # cancel leaves the payment as it was: nothing to apply but the record.
            return ProviderEvent(
                subject=DEPOSIT,
                provider_reference=original,
                result=ProviderResult(
                    status=CANCELLED if ok else PENDING, provider_reference=original
                ),
                **base,
            )
        if code == "OFFER_CLOSED":
            return ProviderEvent(
                subject=DEPOSIT,
                provider_reference=psp,
                result=ProviderResult(status=EXPIRED if ok else PENDING, provider_reference=psp),
                **base,
            )
        if code == "PENDING":
            return ProviderEvent(
                subject=DEPOSIT,
                provider_reference=psp,
                result=ProviderResult(status=PENDING, provider_reference=psp),
                **base,
            )
        if code in _REFUNDS:
            # REFUND success=false: Adyen did not take the refund; REFUND_FAILED: the scheme
            # returned it later. Either way the money is back with us (a refund that already
            # succeeded is not moved backwards by the services).
            refunded = code == "REFUND" and ok
            decline = "" if refunded else self._decline_code(None, item.get("reason"), code)
            return ProviderEvent(
                subject=REFUND,
                provider_reference=psp,
                result=ProviderResult(
                    status=SUCCEEDED if refunded else FAILED,
                    provider_reference=psp,
                    decline_code=decline,
                    decline_kind=self.decline_kind(decline),
                ),
                **base,
            )
        if code in _DISPUTE_ACTIONS or code in _DISPUTE_NOTICES:
            return self._dispute(code, ok, psp, original, item, additional, base)
        return None

    def _amount(self, item: dict):
        amount = item.get("amount")
        currency = amount.get("currency") if isinstance(amount, dict) else None
        if not isinstance(currency, str):
            raise MalformedWebhook(f"{item.get('eventCode')}: amount has no currency")
        try:
            return from_minor_units(amount.get("value"), currency), currency
        except UnknownCurrency:
            raise MalformedWebhook(f"unknown currency {currency!r}") from None

    def _authorisation(self, ok: bool, psp: str, item: dict, additional: dict) -> ProviderResult:
        # Value and currency are signed: the services credit what Adyen authorised and never
        # a success in another currency than the deposit's.
        amount, currency = self._amount(item)
        if ok:
            return ProviderResult(
                status=SUCCEEDED,
                provider_reference=psp,
                amount_received=amount,
                currency=currency,
                **self._payer(additional),
            )
        code = self._decline_code(None, item.get("reason"), "Refused")
        return ProviderResult(
            status=FAILED,
            provider_reference=psp,
            decline_code=code,
            decline_kind=self.decline_kind(code),
        )

    def _dispute(self, code, ok, psp, original, item, additional, base) -> ProviderEvent:
        action, stage = _DISPUTE_ACTIONS.get(code, (DISPUTE_NOTIFIED, ""))
        if not ok:
            # A dispute event Adyen marks unsuccessful moved no money.
            action = DISPUTE_NOTIFIED
        amount, currency = self._amount(item)
        return ProviderEvent(
            subject=DISPUTE,
            provider_reference=original,
            dispute=DisputeInfo(
                action=action,
                dispute_reference=f"{psp}{stage}",
                amount=amount,
                currency=currency,
                # Informational (additionalData is not signed): never used for money.
                reason_code=_text(additional.get("chargebackReasonCode"))[:50],
                reason=_text(item.get("reason"))[:200],
                due_by=_datetime(additional.get("defensePeriodEndsAt")),
            ),
            **base,
        )


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _datetime(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
