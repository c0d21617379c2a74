"""Adyen's Checkout API and Standard webhook, simulated (demo and tests only).

Speaks what the connector speaks to Adyen, relative to the provider's base URL (Adyen's is
`https://checkout-test.adyen.com/`): `POST v{68…72}/payments`, `…/payments/details`,
`…/payments/{pspReference}/refunds`, `…/payments/{pspReference}/cancels` and `…/cancels`,
authenticated by `X-API-Key`, answering Adyen's JSON and its error shape
`{"status", "errorCode", "message", "errorType"}`. The 3-D Secure page is the redirect
action's URL; back at the merchant's `returnUrl` the shopper carries a `redirectResult`.

Notifications are signed as Adyen signs them (written here from Adyen's published rule, apart
from the connector's code; the tests check both against the official SDK) and sent, with Basic
authentication when the provider's options name a user, to the webhook URL Adyen's Customer
Area would hold for this merchant account: our `payments-webhook` endpoint for the provider.

The card: `paymentMethod.encryptedCardNumber` is opaque (Drop-in encrypts it) or, in Adyen's
test environment, `test_<card number>`. Test cards are shared by every tester, so the card a
shopper "holds" is what they type on the 3-D Secure page, else one derived from their
`shopperReference`: one player always pays with the same card, two players only share one
when a test says so. Its `alias` is what Adyen would return for that card.
"""

import base64
import hashlib
import hmac
import json
import re
import secrets
import string
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import re_path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from payments.providers.base import provider_secret
from wallets.money import currency_exponent

from . import core
from .models import SandboxPayment

Kind = SandboxPayment.Kind

# Adyen's Checkout API versions the sandbox answers (the connector pins v71; the official SDK
# 16 defaults to v72).
VERSIONS = r"v(?P<version>6[89]|7[0-2])"
REDIRECT_SALT = "sandbox-adyen-redirect-result"
_PSP_ALPHABET = string.ascii_uppercase + string.digits

# What the sandbox's declines say, as Adyen's refusal reasons.
REFUSALS = {
    core.DECLINED_SOFT: ("12", "Not enough balance"),
    core.DECLINED_HARD: ("5", "Blocked Card"),
}
THREE_DS_FAILED = ("11", "3D Not Authenticated")

# Outcomes only this module schedules (see `_schedule`): a cancel Adyen could not carry out.
CANCEL_FAILED = "cancel_failed"


# --- credentials and signing ----------------------------------------------------------------


def credentials() -> dict:
    """An API key shaped like Adyen's (`AQE…`), a 64-hex-digit HMAC key as the Customer Area
    generates it, a merchant account, and Basic-auth credentials for the webhook endpoint."""
    api_key = (
        "AQE"
        + base64.b64encode(secrets.token_bytes(48)).decode()
        + "-"
        + base64.b64encode(secrets.token_bytes(32)).decode()
        + "-"
        + secrets.token_urlsafe(12)
    )
    return {
        "api_key": api_key,
        "webhook_secret": secrets.token_hex(32).upper(),
        "merchant_id": "SandboxCasinoECOM",
        "options": {
            "test_card": "4111111111111111",
            "webhook_username": "adyen-sandbox",
            "webhook_password": secrets.token_urlsafe(18),
        },
    }


def wrong_hmac_key() -> str:
    """A key of the right format that is not the provider's (the bad-signature scenario)."""
    return hashlib.sha256(core.WRONG_SECRET.encode()).hexdigest().upper()


def sign_item(item: dict, hex_key: str) -> str:
    """Adyen's rule: base64(HMAC-SHA256(unhex(key), the eight fields joined by ':'))."""
    amount = item["amount"]
    message = ":".join(
        [
            item.get("pspReference", ""),
            item.get("originalReference", ""),
            item.get("merchantAccountCode", ""),
            item.get("merchantReference", ""),
            str(amount["value"]),
            amount["currency"],
            item.get("eventCode", ""),
            item.get("success", ""),
        ]
    )
    mac = hmac.new(bytes.fromhex(hex_key), message.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def new_psp_reference() -> str:
    return "".join(secrets.choice(_PSP_ALPHABET) for _ in range(16))


def derived_psp_reference(*parts: str) -> str:
    """A stable 16-character reference (a dispute keeps one across all its events)."""
    digest = int(hashlib.sha256(":".join(parts).encode()).hexdigest(), 16)
    chars = []
    for _ in range(16):
        digest, index = divmod(digest, len(_PSP_ALPHABET))
        chars.append(_PSP_ALPHABET[index])
    return "".join(chars)


def minor(amount: Decimal, currency: str) -> int:
    return int(amount.scaleb(currency_exponent(currency)))


# --- the card --------------------------------------------------------------------------------


def card_of(payment: SandboxPayment, outcome: str) -> dict:
    """The card the shopper paid with, as Adyen describes it in `additionalData`."""
    holder = core.payer_of(payment, outcome)
    if not holder:
        return {}
    number = re.sub(r"[\s-]", "", holder)
    if not number.isdigit():
        number = str(int(core.digest(f"adyen card {number}"), 16) % 10**16).zfill(16)
    return {
        "alias": "A" + str(int(core.digest(f"adyen alias {number}"), 16) % 10**15).zfill(15),
        "aliasType": "Default",
        "cardSummary": number[-4:],
        "cardBin": number[:6],
        "expiryDate": "03/2030",
        "paymentMethod": "visa" if number.startswith("4") else "mc",
    }


# --- answers ---------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, error_type: str = "validation") -> JsonResponse:
    return JsonResponse(
        {"status": status, "errorCode": code, "message": message, "errorType": error_type},
        status=status,
    )


def _authenticate(request, code: str):
    """(provider, body, None) or (None, None, error response), as Adyen checks a request."""
    provider = core.provider(code)
    if not core.api_key_matches(provider, request.headers.get("X-API-Key", "")):
        return None, None, _error(401, "000", "HTTP Status Response - Unauthorized", "security")
    if request.content_type != "application/json":
        return None, None, _error(415, "000", "Content-Type must be application/json")
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return None, None, _error(400, "000", "Unable to parse message")
    if not isinstance(body, dict):
        return None, None, _error(400, "000", "Unable to parse message")
    if body.get("merchantAccount") != provider.merchant_id:
        return None, None, _error(403, "901", "Invalid Merchant Account", "security")
    return provider, body, None


def _amount(body: dict) -> tuple[Decimal, str] | JsonResponse:
    amount = body.get("amount")
    if not isinstance(amount, dict):
        return _error(422, "100", "Required object 'amount' is not provided.")
    value, currency = amount.get("value"), amount.get("currency")
    if not core.known_currency(currency):
        return _error(422, "138", "Unsupported currency specified")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return _error(422, "137", "Invalid amount specified")
    return Decimal(value).scaleb(-currency_exponent(currency)), currency


def _reference(body: dict, field: str = "reference") -> str | JsonResponse:
    reference = body.get(field)
    if not isinstance(reference, str) or not reference.strip() or len(reference) > 80:
        return _error(422, "130", f"Required field '{field}' is not provided.")
    return reference


def _created(**kwargs) -> tuple[SandboxPayment, bool]:
    """Create the object under an Adyen-style pspReference (or find the one already made for
    this merchant reference: a retried request never charges twice)."""
    payment, created = core.create(**kwargs)
    if created:
        payment.sandbox_id = new_psp_reference()
        payment.save(update_fields=["sandbox_id"])
    return payment, created


def _play(payment: SandboxPayment, *, hosted: bool) -> None:
    """The scenario of a new object. Adyen never loses a notification (it retries for days):
    in the timeout scenario the answer is lost but the AUTHORISATION arrives late."""
    outcome = core.outcome_for_scenario(payment)
    if outcome is None and not hosted:
        outcome = core.PAID
    if outcome is not None:
        core.settle(payment, outcome)
    if payment.scenario == core.TIMEOUT:
        late = 2 * settings.PAYMENTS_SANDBOX_WEBHOOK_DELAY_SECONDS
        transaction.on_commit(lambda: _schedule(payment, payment.status, countdown=late))


def _schedule(payment: SandboxPayment, outcome: str, *, countdown: float = 0) -> None:
    from .tasks import send_webhook

    send_webhook.apply_async((payment.pk, outcome, True), countdown=countdown)


def _payment_answer(request, code: str, payment: SandboxPayment) -> dict:
    outcome = core.answer_outcome(payment)
    if payment.scenario == core.CHARGEBACK_FIRST and outcome == core.PAID:
        # The dispute overtakes the success: only notifications carry the result.
        outcome = core.PROCESSING
    answer = {
        "pspReference": payment.sandbox_id,
        "merchantReference": payment.merchant_reference,
        "amount": {"value": minor(payment.amount, payment.currency), "currency": payment.currency},
    }
    if outcome == core.PENDING:
        answer["resultCode"] = "RedirectShopper"
        answer["action"] = {
            "paymentMethodType": "scheme",
            "url": core.base_url(request, "adyen", code)
            + f"checkoutshopper/threeDS/redirect/{payment.sandbox_id}",
            "method": "GET",
            "type": "redirect",
        }
    elif outcome == core.PAID:
        answer["resultCode"] = "Authorised"
        answer["additionalData"] = {**card_of(payment, outcome), "authCode": "012345"}
    elif outcome in (core.DECLINED_SOFT, core.DECLINED_HARD):
        refusal_code, refusal = payment.data.get("refusal") or REFUSALS[outcome]
        answer.update(resultCode="Refused", refusalReasonCode=refusal_code, refusalReason=refusal)
    elif outcome == core.CANCELLED:
        answer["resultCode"] = "Cancelled"
    else:
        # Accepted, result to follow by notification.
        answer["resultCode"] = "Received"
    return answer


# --- Checkout API ----------------------------------------------------------------------------


@csrf_exempt
@require_POST
def payments(request, code, version):
    provider, body, error = _authenticate(request, code)
    if error:
        return error
    amount = _amount(body)
    if isinstance(amount, JsonResponse):
        return amount
    reference = _reference(body)
    if isinstance(reference, JsonResponse):
        return reference
    return_url = body.get("returnUrl")
    if not isinstance(return_url, str) or not return_url.startswith(("http://", "https://")):
        return _error(422, "14_030", "Return URL is missing.")
    method = body.get("paymentMethod")
    if not isinstance(method, dict) or method.get("type") != "scheme":
        return _error(422, "000", "Required object 'paymentMethod' is not provided.")
    has_card = all(
        isinstance(method.get(f), str) and method.get(f)
        for f in ("encryptedCardNumber", "encryptedExpiryMonth", "encryptedExpiryYear")
    )
    if not has_card and not isinstance(method.get("storedPaymentMethodId"), str):
        return _error(422, "000", "Required field 'encryptedCardNumber' is not provided.")
    shopper = body.get("shopperReference")
    with transaction.atomic():
        payment, created = _created(
            provider_code=code,
            kind=Kind.PAYMENT,
            prefix="psp",
            merchant_reference=reference,
            amount=amount[0],
            currency=amount[1],
            # Adyen notifies the URL set in its Customer Area, not one per request.
            notify_url=_webhook_url(provider),
            return_url=return_url,
            data={"customer": shopper} if isinstance(shopper, str) and shopper else {},
        )
        if created:
            _play(payment, hosted=True)
    if created:
        # Outside the transaction: the timeout scenario answers after our client gave up.
        core.stall_if_timeout(payment)
    return JsonResponse(_payment_answer(request, code, payment))


@csrf_exempt
@require_POST
def payment_details(request, code, version):
    _, body, error = _authenticate_details(request, code)
    if error:
        return error
    details = body.get("details")
    token = details.get("redirectResult") if isinstance(details, dict) else None
    try:
        psp = signing.loads(str(token), salt=f"{REDIRECT_SALT}:{code}")
    except signing.BadSignature:
        return _error(422, "000", "Invalid redirectResult")
    payment = SandboxPayment.objects.filter(
        provider_code=code, kind=Kind.PAYMENT, sandbox_id=psp
    ).first()
    if payment is None:
        return _error(422, "000", "Invalid redirectResult")
    return JsonResponse(_payment_answer(request, code, payment))


def _authenticate_details(request, code):
    """/payments/details carries no merchantAccount: only the key is checked."""
    provider = core.provider(code)
    if not core.api_key_matches(provider, request.headers.get("X-API-Key", "")):
        return None, None, _error(401, "000", "HTTP Status Response - Unauthorized", "security")
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return None, None, _error(400, "000", "Unable to parse message")
    if not isinstance(body, dict):
        return None, None, _error(400, "000", "Unable to parse message")
    return provider, body, None


def _payment_by_psp(code: str, psp: str) -> SandboxPayment | None:
    return (
        SandboxPayment.objects.select_for_update()
        .filter(provider_code=code, kind=Kind.PAYMENT, sandbox_id=psp)
        .first()
    )


@csrf_exempt
@require_POST
def refunds(request, code, version, psp):
    provider, body, error = _authenticate(request, code)
    if error:
        return error
    amount = _amount(body)
    if isinstance(amount, JsonResponse):
        return amount
    reference = body.get("reference")
    if reference is not None and (not isinstance(reference, str) or len(reference) > 80):
        return _error(422, "130", "Invalid field 'reference'.")
    with transaction.atomic():
        payment = _payment_by_psp(code, psp)
        if payment is None:
            return _error(422, "167", "Original pspReference required for this operation")
        if payment.status != core.PAID or amount[1] != payment.currency:
            return _error(422, "000", "Payment cannot be refunded")
        earlier = SandboxPayment.objects.filter(
            provider_code=code, kind=Kind.REFUND, data__payment_psp=psp
        ).exclude(merchant_reference=reference or "")
        declined = (core.DECLINED_SOFT, core.DECLINED_HARD)
        taken = sum((r.amount for r in earlier if r.status not in declined), Decimal(0))
        if amount[0] + taken > (payment.amount_paid or payment.amount):
            return _error(422, "137", "Invalid amount specified")
        refund, created = _created(
            provider_code=code,
            kind=Kind.REFUND,
            prefix="psp",
            merchant_reference=reference or f"refund-{new_psp_reference()}",
            amount=amount[0],
            currency=amount[1],
            notify_url=_webhook_url(provider),
            data={"payment_psp": psp},
        )
        if created:
            _play(refund, hosted=False)
    if created:
        core.stall_if_timeout(refund)
    return JsonResponse(
        {
            "merchantAccount": provider.merchant_id,
            "paymentPspReference": psp,
            "pspReference": refund.sandbox_id,
            "reference": refund.merchant_reference,
            "status": "received",
            "amount": {"value": minor(refund.amount, refund.currency), "currency": refund.currency},
        },
        status=201,
    )


@csrf_exempt
@require_POST
def cancel_by_psp(request, code, version, psp):
    provider, body, error = _authenticate(request, code)
    if error:
        return error
    with transaction.atomic():
        payment = _payment_by_psp(code, psp)
        if payment is None:
            return _error(422, "167", "Original pspReference required for this operation")
        answer = _cancel(payment, body, technical=False)
    return JsonResponse(
        {"merchantAccount": provider.merchant_id, "paymentPspReference": psp, **answer},
        status=201,
    )


@csrf_exempt
@require_POST
def cancel_by_reference(request, code, version):
    provider, body, error = _authenticate(request, code)
    if error:
        return error
    payment_reference = _reference(body, "paymentReference")
    if isinstance(payment_reference, JsonResponse):
        return payment_reference
    with transaction.atomic():
        payment = (
            SandboxPayment.objects.select_for_update()
            .filter(provider_code=code, kind=Kind.PAYMENT, merchant_reference=payment_reference)
            .first()
        )
        if payment is None:
            # Adyen takes a technical cancel for a payment it has not seen (yet): received.
            answer = {"pspReference": new_psp_reference(), "status": "received"}
            if isinstance(body.get("reference"), str):
                answer["reference"] = body["reference"]
        else:
            answer = _cancel(payment, body, technical=True)
    return JsonResponse(
        {"merchantAccount": provider.merchant_id, "paymentReference": payment_reference, **answer},
        status=201,
    )


def _cancel(payment: SandboxPayment, body: dict, *, technical: bool) -> dict:
    """Cancel an open payment. One already paid is captured at once in the sandbox (Adyen's
    default immediate capture), so its cancel fails and says so by notification."""
    cancel_psp = new_psp_reference()
    reference = body.get("reference") if isinstance(body.get("reference"), str) else ""
    cancel = {"psp": cancel_psp, "reference": reference, "technical": technical}
    if payment.status == core.PENDING:
        core.settle(payment, core.CANCELLED, cancel=cancel)
    elif payment.status != core.CANCELLED:
        payment.data = {**payment.data, "cancel": cancel}
        payment.save(update_fields=["data"])
        transaction.on_commit(lambda: _schedule(payment, CANCEL_FAILED))
    answer = {"pspReference": cancel_psp, "status": "received"}
    if reference:
        answer["reference"] = reference
    return answer


# --- the 3-D Secure page ---------------------------------------------------------------------


@csrf_exempt
@require_http_methods(["GET", "POST"])
def three_ds(request, code, psp):
    payment = get_object_or_404(
        SandboxPayment, provider_code=code, kind=Kind.PAYMENT, sandbox_id=psp
    )
    if request.method == "GET":
        return core.hosted_page(
            request,
            payment,
            title="3-D Secure",
            description="Your card issuer asks you to confirm this payment.",
            buttons=[("authenticate", "Authenticate"), ("fail", "Fail authentication")],
        )
    with transaction.atomic():
        payment = SandboxPayment.objects.select_for_update().get(pk=payment.pk)
        if payment.status == core.PENDING:
            data = {}
            payer = request.POST.get("payer", "").strip()
            if payer:
                data["payer"] = payer[:200]
            if request.POST.get("action") == "authenticate":
                core.settle(payment, core.PAID, **data)
            else:
                core.settle(payment, core.DECLINED_HARD, refusal=list(THREE_DS_FAILED), **data)
    token = signing.dumps(payment.sandbox_id, salt=f"{REDIRECT_SALT}:{code}")
    return HttpResponseRedirect(_with_query(payment.return_url or "/", redirectResult=token))


def _with_query(url: str, **params) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit(parts._replace(query=query))


# --- notifications ---------------------------------------------------------------------------


def _webhook_url(provider) -> str:
    from payments.services.common import webhook_url

    return webhook_url(provider)


def webhooks(payment, outcome, *, provider, signed_right):
    """One delivery holding the items Adyen would send for `payment` reaching `outcome`."""
    items = _items(payment, outcome, provider)
    if not items:
        return []
    key = provider_secret(provider, "webhook_secret") if signed_right else wrong_hmac_key()
    for item in items:
        item["additionalData"]["hmacSignature"] = sign_item(item, key)
    body = json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": i} for i in items]}
    ).encode()
    headers = {"Content-Type": "application/json"}
    username = provider.options.get("webhook_username")
    if username:
        password = provider_secret(provider, "webhook_password")
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return [(body, headers)]


def _item(payment, provider, event_code, *, success=True, psp=None, **fields) -> dict:
    item = {
        "amount": {"value": minor(payment.amount, payment.currency), "currency": payment.currency},
        "eventCode": event_code,
        "eventDate": timezone.now().isoformat(timespec="seconds"),
        "merchantAccountCode": provider.merchant_id,
        "merchantReference": payment.merchant_reference,
        "pspReference": psp or payment.sandbox_id,
        "success": "true" if success else "false",
        "additionalData": {},
    }
    item.update(fields)
    return item


def _items(payment: SandboxPayment, outcome: str, provider) -> list[dict]:
    if payment.kind == Kind.PAYMENT:
        return _payment_items(payment, outcome, provider)
    if payment.kind == Kind.REFUND:
        return _refund_items(payment, outcome, provider)
    # Adyen's Checkout API makes no payouts (docs/providers/adyen.md).
    return []


def _payment_items(payment, outcome, provider) -> list[dict]:
    if outcome == core.PAID:
        card = card_of(payment, outcome)
        return [
            _item(
                payment,
                provider,
                "AUTHORISATION",
                paymentMethod=card.get("paymentMethod", "visa"),
                reason=f"012345:{card.get('cardSummary', '')}:03/2030",
                operations=["CANCEL", "CAPTURE", "REFUND"],
                additionalData={**card, "authCode": "012345"},
            )
        ]
    if outcome in (core.DECLINED_SOFT, core.DECLINED_HARD):
        _, refusal = payment.data.get("refusal") or REFUSALS[outcome]
        return [_item(payment, provider, "AUTHORISATION", success=False, reason=refusal)]
    if outcome in (core.CANCELLED, CANCEL_FAILED):
        cancel = payment.data.get("cancel") or {}
        return [
            _item(
                payment,
                provider,
                "TECHNICAL_CANCEL" if cancel.get("technical") else "CANCELLATION",
                success=outcome == core.CANCELLED,
                psp=cancel.get("psp") or derived_psp_reference(payment.sandbox_id, "cancel"),
                originalReference=payment.sandbox_id,
                merchantReference=cancel.get("reference") or payment.merchant_reference,
                **({} if outcome == core.CANCELLED else {"reason": "Transaction already captured"}),
            )
        ]
    if outcome == core.EXPIRED:
        # The shopper never finished: Adyen closes the offer.
        return [_item(payment, provider, "OFFER_CLOSED")]
    if outcome == core.PENDING:
        return [_item(payment, provider, "PENDING")]
    if outcome in (core.DISPUTED, core.DISPUTE_WON):
        dispute_psp = derived_psp_reference(payment.sandbox_id, "dispute")
        dispute = {
            "psp": dispute_psp,
            "originalReference": payment.sandbox_id,
            "paymentMethod": card_of(payment, core.PAID).get("paymentMethod", "visa"),
        }
        defense_ends = (timezone.now() + timedelta(days=20)).isoformat(timespec="seconds")
        facts = {
            "chargebackReasonCode": "10.4",
            "chargebackSchemeCode": "visa",
            "defensePeriodEndsAt": defense_ends,
            "defendable": "true",
        }
        if outcome == core.DISPUTE_WON:
            return [
                _item(
                    payment,
                    provider,
                    "CHARGEBACK_REVERSED",
                    reason="Other Fraud-Card Absent Environment",
                    additionalData={**facts, "disputeStatus": "Won"},
                    **dispute,
                )
            ]
        return [
            _item(
                payment,
                provider,
                event_code,
                reason="Other Fraud-Card Absent Environment",
                additionalData={**facts, "disputeStatus": "Undefended"},
                **dispute,
            )
            for event_code in ("NOTIFICATION_OF_CHARGEBACK", "CHARGEBACK")
        ]
    return []


def _refund_items(refund, outcome, provider) -> list[dict]:
    original = refund.data.get("payment_psp", "")
    if outcome == core.PAID:
        return [_item(refund, provider, "REFUND", originalReference=original)]
    if outcome in (core.DECLINED_SOFT, core.DECLINED_HARD):
        return [
            _item(
                refund,
                provider,
                "REFUND",
                success=False,
                originalReference=original,
                reason="Insufficient balance on payment",
            )
        ]
    return []


urlpatterns = [
    re_path(rf"^{VERSIONS}/payments$", payments),
    re_path(rf"^{VERSIONS}/payments/details$", payment_details),
    re_path(rf"^{VERSIONS}/payments/(?P<psp>[A-Z0-9]{{16}})/refunds$", refunds),
    re_path(rf"^{VERSIONS}/payments/(?P<psp>[A-Z0-9]{{16}})/cancels$", cancel_by_psp),
    re_path(rf"^{VERSIONS}/cancels$", cancel_by_reference),
    re_path(r"^checkoutshopper/threeDS/redirect/(?P<psp>[A-Z0-9]{16})$", three_ds),
]
