"""A simulated Skrill: Quick Checkout, status_url callbacks, the Automated Payments Interface
(Send Money `pay.pl`, refunds `refund.pl`) and the Merchant Query Interface (`query.pl`),
written from Skrill's published guides independently of the connector
(`payments/providers/skrill.py`); the tests check that the two agree over HTTP.

Paths are relative to the provider's base URL, as `app/…` is on www.skrill.com; Quick
Checkout, which Skrill serves from its own host (pay.skrill.com), lives at `pay/`
(`options["checkout_base_url"] = "pay/"`).

Where the sandbox has to choose what Skrill does not publish, it says so here:
- a refused Quick Checkout request answers 400 `{"code": "BAD_REQUEST", "message": …}`;
- `status_trn` finds payments and Send Money transfers by our reference (`trn_id`) and any
  transaction, refunds included, by its Skrill id (`mb_trn_id`); a Quick Checkout session the
  player has not paid is no transaction yet (`403 Transaction not found`);
- a refund's status report names the refunded payment in `transaction_id` and the refund in
  `mb_transaction_id`;
- the merchant account holds every currency the provider takes, so `mb_currency` is the
  payment's currency and `mb_amount` its amount.
Magic amounts (`core.scenario_for`) decide outcomes; the soft decline fails with
`failed_reason_code` 05 (insufficient funds), the hard one with 06 (merchant/processor
declined); Send Money declines with `BALANCE_NOT_ENOUGH` (soft) or `DISALLOWED_RECIPIENT`
(hard).
"""

import hashlib
import hmac
import re
import secrets
import string
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlencode
from xml.etree import ElementTree

from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from payments.models import PaymentProvider
from payments.providers.base import provider_secret
from wallets.money import currency_exponent, quantize_money

from . import core
from .models import SandboxPayment

Kind = SandboxPayment.Kind
PREPARED = "prepared"  # an API session (refund.pl / pay.pl) not executed yet
SESSION_LIFETIME = timedelta(minutes=15)  # Skrill's API sessions last 15 minutes

PAYMENT_STATUS = {
    core.PAID: "2",
    core.PENDING: "0",
    core.PROCESSING: "0",
    core.CANCELLED: "-1",
    # Skrill cancels a pending payment after 14 days; an abandoned session never calls back.
    core.EXPIRED: "-1",
    core.DECLINED_SOFT: "-2",
    core.DECLINED_HARD: "-2",
    core.DISPUTED: "-3",
}
REFUND_STATUS = {
    core.PAID: "2",
    core.PENDING: "0",
    core.PROCESSING: "0",
    core.DECLINED_SOFT: "-2",
    core.DECLINED_HARD: "-2",
}
TRANSFER_STATUS = {
    core.PAID: ("2", "processed"),
    core.PENDING: ("1", "scheduled"),
    core.PROCESSING: ("1", "scheduled"),
    core.CANCELLED: ("-1", "cancelled"),
    core.DECLINED_SOFT: ("-2", "failed"),
    core.DECLINED_HARD: ("-2", "failed"),
}
FAILED_REASON = {core.DECLINED_SOFT: "05", core.DECLINED_HARD: "06"}
TRANSFER_ERROR = {
    core.DECLINED_SOFT: "BALANCE_NOT_ENOUGH",
    core.DECLINED_HARD: "DISALLOWED_RECIPIENT",
}

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_URL = re.compile(r"https?://\S+")
_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,8})?")
_MAX_REFERENCE = 64  # SandboxPayment.merchant_reference


# --- credentials and signatures ----------------------------------------------------------


def credentials() -> dict:
    """A numeric merchant id, a secret word as Skrill accepts it (lower case, letters and
    digits, at most 10 characters), an API/MQI password, and the merchant's e-mail."""
    merchant_id = str(10**8 + secrets.randbelow(9 * 10**8))
    return {
        "api_key": f"mqi{secrets.token_hex(8)}",
        "webhook_secret": _secret_word(),
        "merchant_id": merchant_id,
        "options": {
            "merchant_email": f"merchant{merchant_id}@sandbox-skrill.test",
            "checkout_base_url": "pay/",
            "sha2sig_enabled": True,
        },
    }


def _secret_word() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(10))


# Deliberately wrong secret words, of the format Skrill accepts.
WRONG_SECRET_WORDS = ("wrongword0", "wrongword1")


def wrong_secret_word(secret_word: str) -> str:
    """A secret word of the right format that is not the merchant's."""
    return next(word for word in WRONG_SECRET_WORDS if word != secret_word)


def signature(fields: dict, secret_word: str, algorithm: str) -> str:
    """Skrill's status signature: the upper-case hex `algorithm` (md5 or sha256) digest of
    merchant_id, transaction_id, the upper-case MD5 of the secret word, mb_amount,
    mb_currency and status, concatenated."""
    word = hashlib.md5(secret_word.encode()).hexdigest().upper()  # noqa: S324 (Skrill's rule)
    text = "".join(
        [
            fields["merchant_id"],
            fields["transaction_id"],
            word,
            fields["mb_amount"],
            fields["mb_currency"],
            fields["status"],
        ]
    )
    return hashlib.new(algorithm, text.encode()).hexdigest().upper()


def _signed(fields: dict, provider: PaymentProvider, secret_word: str) -> dict:
    fields = {**fields, "md5sig": signature(fields, secret_word, "md5")}
    if (provider.options or {}).get("sha2sig_enabled"):
        fields["sha2sig"] = signature(fields, secret_word, "sha256")
    return fields


# --- status reports ----------------------------------------------------------------------


def _money(value: Decimal, currency: str) -> str:
    return f"{quantize_money(value, currency):f}"


def _payer_email(payment: SandboxPayment, outcome: str) -> str:
    payer = core.payer_of(payment, outcome)
    if payer and "@" not in payer:
        payer = re.sub(r"[^a-z0-9._-]", "-", payer.lower()) + "@wallet.sandbox.test"
    return payer


def _customer_id(payer_email: str) -> str:
    """Skrill's numeric id of the paying customer, stable per wallet."""
    return str(10**8 + int(core.digest(payer_email.lower()), 16) % (9 * 10**8))


def status_report(payment: SandboxPayment, outcome: str, provider: PaymentProvider) -> dict:
    """The fields Skrill posts to the status URL (and answers to status_trn), unsigned."""
    merchant_email = (provider.options or {}).get("merchant_email", "")
    data = payment.data
    if payment.kind == Kind.PAYMENT:
        status = PAYMENT_STATUS.get(outcome, "0")
        paid = payment.amount_paid if payment.amount_paid is not None else payment.amount
        fields = {
            "pay_to_email": merchant_email,
            "merchant_id": provider.merchant_id,
            "transaction_id": payment.merchant_reference,
            "mb_transaction_id": data["mb_transaction_id"],
            "mb_amount": _money(paid, payment.currency),
            "mb_currency": payment.currency,
            "status": status,
            "amount": _money(payment.amount, payment.currency),
            "currency": payment.currency,
            "payment_type": "WLT",
        }
        if payer := _payer_email(payment, outcome):
            fields["pay_from_email"] = payer
            fields["customer_id"] = _customer_id(payer)
        if status == "-2":
            fields["failed_reason_code"] = FAILED_REASON.get(outcome, "99")
    elif payment.kind == Kind.REFUND:
        fields = {
            "pay_to_email": merchant_email,
            "merchant_id": provider.merchant_id,
            # The refunded payment; the refund itself is mb_transaction_id.
            "transaction_id": data["transaction_id"],
            "mb_transaction_id": data["mb_transaction_id"],
            "mb_amount": _money(payment.amount, payment.currency),
            "mb_currency": payment.currency,
            "status": REFUND_STATUS.get(outcome, "0"),
            "amount": _money(payment.amount, payment.currency),
            "currency": payment.currency,
        }
    else:
        status, _ = TRANSFER_STATUS.get(outcome, ("1", "scheduled"))
        fields = {
            "pay_from_email": merchant_email,
            "pay_to_email": data.get("bnf_email", ""),
            "merchant_id": provider.merchant_id,
            "transaction_id": payment.merchant_reference,
            "mb_transaction_id": data["mb_transaction_id"],
            "mb_amount": _money(payment.amount, payment.currency),
            "mb_currency": payment.currency,
            "status": status,
            "amount": _money(payment.amount, payment.currency),
            "currency": payment.currency,
        }
    # Merchant fields come back as they were sent.
    fields.update(data.get("merchant_fields", {}))
    return fields


def webhooks(payment, outcome, *, provider, signed_right):
    """The status_url (payments) and refund_status_url (refunds) posts for `outcome`. Send
    Money has no callback, and Skrill reports no chargeback reversal: those are empty."""
    if not payment.notify_url:
        return []
    if payment.kind == Kind.PAYOUT or outcome == core.DISPUTE_WON:
        return []
    if payment.kind == Kind.REFUND and outcome not in REFUND_STATUS:
        return []
    if payment.kind == Kind.PAYMENT and outcome == core.DISPUTED:
        # From now on Skrill's record of the payment says -3, in answers too.
        payment.data = {**payment.data, "charged_back": True}
        SandboxPayment.objects.filter(pk=payment.pk).update(data=payment.data)
    secret_word = provider_secret(provider, "webhook_secret")
    if not signed_right:
        secret_word = wrong_secret_word(secret_word)
    fields = _signed(status_report(payment, outcome, provider), provider, secret_word)
    return [(urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"})]


# --- shared view helpers ------------------------------------------------------------------


def _provider(code: str) -> PaymentProvider | None:
    return PaymentProvider.objects.filter(code=code, protocol="skrill").first()


def _params(request):
    return request.POST if request.method == "POST" else request.GET


def _logged_in(provider: PaymentProvider, params) -> bool:
    """API and MQI calls name the merchant's e-mail and the lower-case hex MD5 of the
    API/MQI password (an upper-case MD5 is refused, as Skrill documents)."""
    email = params.get("email", "")
    merchant_email = (provider.options or {}).get("merchant_email", "")
    api_password = provider_secret(provider, "api_key")
    if not merchant_email or not api_password or email.lower() != merchant_email.lower():
        return False
    expected = hashlib.md5(api_password.encode()).hexdigest()  # noqa: S324 (Skrill's rule)
    presented = params.get("password", "").encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected.encode(), presented)


def _amount(value, currency: str) -> Decimal | None:
    """A positive amount with no more decimals than the currency has (Skrill accepts 39.60,
    39.6 and 39)."""
    if not isinstance(value, str) or not _AMOUNT.fullmatch(value):
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return None
    if amount <= 0 or -amount.as_tuple().exponent > currency_exponent(currency):
        return None
    return amount


def _currency(provider: PaymentProvider, code) -> str | None:
    if not isinstance(code, str) or not core.known_currency(code):
        return None
    return code if provider.currencies.filter(code=code).exists() else None


def _url(value: str) -> bool:
    return bool(_URL.fullmatch(value)) and len(value) <= 400


def _mb_transaction_id() -> str:
    return str(10**9 + secrets.randbelow(9 * 10**9))


def _merchant_fields(params) -> dict:
    """Up to five merchant fields, named in `merchant_fields`, to post back."""
    names = [n.strip() for n in params.get("merchant_fields", "").split(",") if n.strip()]
    return {name: params.get(name, "")[:240] for name in names[:5] if name in params}


# --- Quick Checkout ------------------------------------------------------------------------


def _bad_request(message: str) -> JsonResponse:
    return JsonResponse({"code": "BAD_REQUEST", "message": message}, status=400)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def checkout(request, code):
    """`POST pay/` opens a session (with `prepare_only=1` it answers the SID, otherwise it
    takes the player to the page); `pay/?sid=…` is the page the player pays on."""
    provider = _provider(code)
    if provider is None:
        return _bad_request("Unknown merchant.")
    if "sid" in request.GET:
        return _checkout_page(request, code)
    if request.method != "POST":
        return _bad_request("Missing sid.")
    params = request.POST
    merchant_email = (provider.options or {}).get("merchant_email", "")
    if params.get("pay_to_email", "").lower() != merchant_email.lower() or not merchant_email:
        return _bad_request("Invalid parameter: pay_to_email.")
    currency = _currency(provider, params.get("currency"))
    if currency is None:
        return _bad_request("Invalid parameter: currency.")
    amount = _amount(params.get("amount"), currency)
    if amount is None:
        return _bad_request("Invalid parameter: amount.")
    reference = params.get("transaction_id", "") or f"qc-{secrets.token_hex(8)}"
    if len(reference) > _MAX_REFERENCE:
        return _bad_request("Invalid parameter: transaction_id.")
    status_url = params.get("status_url", "")
    if status_url and not _url(status_url):
        return _bad_request("Invalid parameter: status_url.")
    for name in ("return_url", "cancel_url"):
        if params.get(name) and not _url(params[name]):
            return _bad_request(f"Invalid parameter: {name}.")
    merchant_fields = _merchant_fields(params)
    payment = core.start(
        code=code,
        kind=Kind.PAYMENT,
        prefix="qc",
        reference=reference,
        amount=amount,
        currency=currency,
        notify_url=status_url,
        return_url=params.get("return_url", ""),
        data={
            "sid": secrets.token_hex(16),
            "mb_transaction_id": _mb_transaction_id(),
            "cancel_url": params.get("cancel_url", ""),
            "language": params.get("language", "EN")[:5],
            # Who pays, when the merchant pre-filled it (their own e-mail) or named the player.
            "customer": params.get("pay_from_email", "") or merchant_fields.get("player_id", ""),
            "merchant_fields": merchant_fields,
        },
        hosted=True,
    )
    sid = payment.data["sid"]
    if params.get("prepare_only") == "1":
        return HttpResponse(sid, content_type="text/html;charset=utf-8")
    return HttpResponseRedirect(f"?sid={sid}")


def _checkout_page(request, code):
    payment = SandboxPayment.objects.filter(
        provider_code=code, kind=Kind.PAYMENT, data__sid=request.GET.get("sid", "")
    ).first()
    if payment is None:
        return HttpResponse("Session not found or expired.", status=404, content_type="text/plain")
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "pay":
            return core.finish_page(payment, core.PAID, request)
        if action == "cancel":
            if payment.status == core.PENDING:
                core.settle(payment, core.CANCELLED)
            return HttpResponseRedirect(payment.data.get("cancel_url") or payment.return_url or "/")
        return HttpResponse("Unknown action.", status=400, content_type="text/plain")
    return core.hosted_page(
        request,
        payment,
        title="Skrill",
        description="Log in to your Skrill wallet and confirm the payment.",
        buttons=[("pay", "Pay now"), ("cancel", "Cancel")],
    )


# --- Merchant Query Interface ------------------------------------------------------------


def _mqi(code: int, text: str, data: str = "") -> HttpResponse:
    # The MQI answers HTTP 200 whatever happened; the outcome is the first line.
    return HttpResponse(f"{code}\t\t{text}\n{data}", content_type="text/html;charset=UTF-8")


def _transaction(code: str, *, trn_id: str = "", mb_trn_id: str = ""):
    found = SandboxPayment.objects.filter(provider_code=code).exclude(status=PREPARED)
    if trn_id:
        found = found.filter(kind__in=[Kind.PAYMENT, Kind.PAYOUT], merchant_reference=trn_id)
    else:
        found = found.filter(data__mb_transaction_id=mb_trn_id)
    payment = found.first()
    # A checkout session the player has not paid is not a transaction yet.
    if payment is None or (payment.kind == Kind.PAYMENT and payment.status == core.PENDING):
        return None
    return payment


@csrf_exempt
@require_http_methods(["GET", "POST"])
def query(request, code):
    provider = _provider(code)
    params = _params(request)
    if provider is None or not _logged_in(provider, params):
        return _mqi(401, "Cannot login")
    action = params.get("action", "")
    if action not in ("status_trn", "repost"):
        return _mqi(400, "Bad request")
    trn_id, mb_trn_id = params.get("trn_id", ""), params.get("mb_trn_id", "")
    if not trn_id and not mb_trn_id:
        return _mqi(400, "Bad request: trn_id or mb_trn_id required")
    payment = _transaction(code, trn_id=trn_id, mb_trn_id=mb_trn_id)
    if payment is None:
        return _mqi(403, f"Transaction not found: {trn_id or mb_trn_id}")
    if action == "repost":
        from .tasks import send_webhook

        if params.get("status_url"):
            if not _url(params["status_url"]):
                return _mqi(404, f"Illegal parameter value: {params['status_url']}")
            SandboxPayment.objects.filter(pk=payment.pk).update(notify_url=params["status_url"])
        send_webhook.delay(payment.pk, payment.status, True)
        return _mqi(200, "OK")
    secret_word = provider_secret(provider, "webhook_secret")
    report = _signed(status_report(payment, _current(payment), provider), provider, secret_word)
    return _mqi(200, "OK", urlencode(report))


def _current(payment: SandboxPayment) -> str:
    """What Skrill's record says now: a processed payment later charged back says -3."""
    is_paid = payment.kind == Kind.PAYMENT and payment.status == core.PAID
    return core.DISPUTED if is_paid and payment.data.get("charged_back") else payment.status


# --- Automated Payments Interface: Send Money and refunds ---------------------------------


def _xml(**elements) -> HttpResponse:
    root = ElementTree.Element("response")
    _fill(root, elements)
    body = ElementTree.tostring(root, encoding="unicode")
    return HttpResponse(
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + body,
        content_type="text/xml",
    )


def _fill(parent, elements: dict):
    for name, value in elements.items():
        child = ElementTree.SubElement(parent, name)
        if isinstance(value, dict):
            _fill(child, value)
        else:
            child.text = str(value)


def _api_error(message: str) -> HttpResponse:
    # Like the MQI, the API answers HTTP 200 with the error in the XML.
    return _xml(error={"error_msg": message})


def _session(code: str, kind: str, sid: str):
    """The prepared session `sid`, or the error Skrill answers for it."""
    if not sid:
        return None, "MISSING_SID"
    payment = SandboxPayment.objects.filter(provider_code=code, kind=kind, data__sid=sid).first()
    if payment is None:
        return None, "INVALID_SID"
    if payment.status != PREPARED:
        return None, "ALREADY_EXECUTED"
    if timezone.now() - payment.created_at > SESSION_LIFETIME:
        return None, "SESSION_EXPIRED"
    return payment, ""


def _execute(payment: SandboxPayment) -> str:
    """Run a prepared transfer or refund through its scenario; returns the outcome."""
    payment.status = core.PENDING
    payment.save(update_fields=["status"])
    outcome = core.outcome_for_scenario(payment) or core.PAID
    core.settle(payment, outcome)
    core.stall_if_timeout(payment)
    return outcome


@csrf_exempt
@require_http_methods(["GET", "POST"])
def send_money(request, code):
    provider = _provider(code)
    params = _params(request)
    if provider is None or not _logged_in(provider, params):
        return _api_error("CANNOT_LOGIN")
    action = params.get("action", "")
    if action == "prepare":
        return _prepare_transfer(code, provider, params)
    if action == "transfer":
        payment, error = _session(code, Kind.PAYOUT, params.get("sid", ""))
        if error:
            return _api_error(error)
        outcome = _execute(payment)
        if outcome in TRANSFER_ERROR:
            return _api_error(TRANSFER_ERROR[outcome])
        status, message = TRANSFER_STATUS[core.answer_outcome(payment)]
        return _xml(
            transaction={
                "amount": _money(payment.amount, payment.currency),
                "currency": payment.currency,
                "id": payment.data["mb_transaction_id"],
                "status": status,
                "status_msg": message,
            }
        )
    return _api_error("INVALID_OR_MISSING_ACTION")


def _prepare_transfer(code, provider, params):
    if not params.get("currency"):
        return _api_error("MISSING_CURRENCY")
    currency = _currency(provider, params["currency"])
    if currency is None:
        return _api_error("INVALID_CURRENCY")
    if not params.get("amount"):
        return _api_error("MISSING_AMOUNT")
    amount = _amount(params["amount"], currency)
    if amount is None:
        return _api_error("INVALID_AMOUNT")
    if not params.get("bnf_email"):
        return _api_error("MISSING_BNF_EMAIL")
    if not _EMAIL.fullmatch(params["bnf_email"]) or len(params["bnf_email"]) > 100:
        return _api_error("INVALID_BNF_EMAIL")
    if len(params.get("subject", "")) > 250:
        return _api_error("INVALID_SUBJECT")
    if len(params.get("note", "")) > 2000:
        return _api_error("INVALID_NOTE")
    reference = params.get("frn_trn_id", "") or f"api-{secrets.token_hex(8)}"
    if len(reference) > _MAX_REFERENCE:
        return _api_error("INVALID_FRN_TRN_ID")
    data = {"bnf_email": params["bnf_email"], "subject": params.get("subject", "")}
    return _prepare(code, Kind.PAYOUT, reference, amount, currency, "", data)


def _prepare(code, kind, reference, amount, currency, notify_url, data):
    """A session for `reference`; a reference already executed is refused (Skrill's
    uniqueness of frn_trn_id), a prepared one gets a fresh session."""
    sid = secrets.token_hex(16)
    payment, created = core.create(
        provider_code=code,
        kind=kind,
        prefix="po" if kind == Kind.PAYOUT else "rf",
        merchant_reference=reference,
        amount=amount,
        currency=currency,
        notify_url=notify_url,
        data={**data, "sid": sid, "mb_transaction_id": _mb_transaction_id()},
        status=PREPARED,
    )
    if not created:
        if payment.status != PREPARED:
            return _api_error("ALREADY_EXECUTED")
        payment.amount, payment.currency, payment.notify_url = amount, currency, notify_url
        payment.data = {**payment.data, **data, "sid": sid}
        payment.created_at = timezone.now()
        payment.save()
    return _xml(sid=sid)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def refunds(request, code):
    provider = _provider(code)
    params = _params(request)
    if provider is None or not _logged_in(provider, params):
        return _api_error("CANNOT_LOGIN")
    action = params.get("action", "")
    if action == "prepare":
        return _prepare_refund(code, params)
    if action == "refund":
        refund, error = _session(code, Kind.REFUND, params.get("sid", ""))
        if error:
            return _api_error(error)
        _execute(refund)
        answer = {
            "mb_amount": _money(refund.amount, refund.currency),
            "mb_currency": refund.currency,
            "mb_transaction_id": refund.data["mb_transaction_id"],
            "status": REFUND_STATUS.get(core.answer_outcome(refund), "0"),
        }
        if answer["status"] == "-2":
            answer["failed_reason_code"] = FAILED_REASON[refund.status]
        return _xml(**answer)
    return _api_error("INVALID_OR_MISSING_ACTION")


def _prepare_refund(code, params):
    transaction_id, mb_transaction_id = (
        params.get("transaction_id", ""),
        params.get("mb_transaction_id", ""),
    )
    if not transaction_id and not mb_transaction_id:
        return _api_error("MISSING_TRANSACTION_ID")
    original = _transaction(code, trn_id=transaction_id, mb_trn_id=mb_transaction_id)
    if original is None or original.kind != Kind.PAYMENT:
        return _api_error("INVALID_TRANSACTION_ID")
    if original.status != core.PAID or original.data.get("charged_back"):
        return _api_error("REFUND_DENIED")
    refunded = sum(
        (
            r.amount
            for r in SandboxPayment.objects.filter(
                provider_code=code,
                kind=Kind.REFUND,
                data__original=original.pk,
                status__in=[core.PAID, core.PENDING],
            )
        ),
        Decimal(0),
    )
    left = (original.amount_paid or original.amount) - refunded
    if params.get("amount"):
        amount = _amount(params["amount"], original.currency)
        if amount is None or amount > left:
            return _api_error("INVALID_AMOUNT")
    elif left > 0:
        amount = left
    else:
        return _api_error("REFUND_DENIED")
    status_url = params.get("refund_status_url", "")
    if status_url and not _url(status_url):
        return _api_error("INVALID_REFUND_STATUS_URL")
    merchant_fields = _merchant_fields(params)
    reference = merchant_fields.get("refund_reference") or f"rf-{secrets.token_hex(8)}"
    if len(reference) > _MAX_REFERENCE:
        return _api_error("INVALID_MERCHANT_FIELDS")
    data = {
        "transaction_id": original.merchant_reference,
        "original": original.pk,
        "merchant_fields": merchant_fields,
        "refund_note": params.get("refund_note", "")[:2000],
    }
    return _prepare(code, Kind.REFUND, reference, amount, original.currency, status_url, data)


urlpatterns = [
    path("pay/", checkout, name="sandbox-skrill-checkout"),
    path("query.pl", query, name="sandbox-skrill-query"),
    path("pay.pl", send_money, name="sandbox-skrill-send-money"),
    path("refund.pl", refunds, name="sandbox-skrill-refund"),
]
