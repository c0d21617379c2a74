"""Simulated provider servers: four APIs in four styles, each with its hosted page.

Mounted under /api/v1/sandbox/<provider code>/ only when SANDBOX_ENABLED. They check the
provider's credentials like the real thing (the adapters must send them) and deliver
webhooks through Celery. Demo and tests only: never enable in production.
"""

import json
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from urllib.parse import urlencode

from django.core import signing
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from wallets.models import Currency
from wallets.services import minor_unit

from . import core
from .dialects import Card, Crypto, Ewallet, OpenBanking
from .models import SandboxPayment

Kind = SandboxPayment.Kind


def _base_url(request, code: str) -> str:
    return request.build_absolute_uri(f"/api/v1/sandbox/{code}/")


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _decimal(value) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, TypeError):
        return None
    return amount if amount.is_finite() and amount > 0 else None


def _known_currency(code) -> bool:
    return Currency.objects.filter(code=code or "").exists()


def _start(
    *,
    code,
    kind,
    prefix,
    reference,
    amount,
    currency,
    notify_url,
    return_url="",
    data=None,
    hosted=False,
):
    """Create (or find, for a retried request) the object and play its scenario. Returns the
    object; a `hosted` payment in the plain success scenario waits for its hosted page."""
    payment, created = core.create(
        provider_code=code,
        kind=kind,
        prefix=prefix,
        merchant_reference=reference,
        amount=amount,
        currency=currency,
        notify_url=notify_url,
        return_url=return_url,
        data=data,
    )
    if created:
        outcome = core.outcome_for_scenario(payment)
        if outcome is None and not hosted:
            outcome = core.PAID
        if outcome is not None:
            core.settle(payment, outcome)
        core.stall_if_timeout(payment)
    return payment


def _hosted_page(request, payment, *, title, description, buttons, asks_payer=True):
    return render(
        request,
        "payments/sandbox/hosted_page.html",
        {
            "payment": payment,
            "title": title,
            "description": description,
            "buttons": buttons,
            # A crypto invoice only knows the address paid to, never the payer's.
            "asks_payer": asks_payer,
        },
    )


def _finish_page(payment, outcome, request):
    if payment.status == core.PENDING:
        # The card number, wallet email or IBAN the player paid with, when the form has one.
        payer = request.POST.get("payer", "").strip()
        core.settle(payment, outcome, **({"payer": payer[:200]} if payer else {}))
    return HttpResponseRedirect(payment.return_url or "/")


# --- card (JSON + API key, 3-D Secure) ---------------------------------------------------


def _card_auth(request, code) -> bool:
    header = request.headers.get("Authorization", "")
    return header.startswith("Bearer ") and core.api_key_matches(core.provider(code), header[7:])


@csrf_exempt
@require_http_methods(["GET", "POST"])
def card_objects(request, code, collection):
    kind, prefix = {
        "payments": (Kind.PAYMENT, "pay"),
        "payouts": (Kind.PAYOUT, "po"),
        "refunds": (Kind.REFUND, "re"),
    }[collection]
    if not _card_auth(request, code):
        return _error(401, "Invalid API key.")
    if request.method == "GET":
        found = SandboxPayment.objects.filter(
            provider_code=code, kind=kind, merchant_reference=request.GET.get("reference", "")
        )
        return JsonResponse(
            {"data": [Card.render(p, base_url=_base_url(request, code)) for p in found]}
        )
    try:
        body = json.loads(request.body)
    except ValueError:
        return _error(400, "Body must be JSON.")
    amount = _decimal(body.get("amount"))
    if amount is None or not body.get("reference") or not body.get("notify_url"):
        return _error(400, "amount, reference and notify_url are required.")
    if not _known_currency(body.get("currency")):
        return _error(400, "Unknown currency.")
    payment = _start(
        code=code,
        kind=kind,
        prefix=prefix,
        reference=body["reference"],
        amount=amount,
        currency=body.get("currency", ""),
        notify_url=body["notify_url"],
        return_url=body.get("return_url", ""),
        data={k: body[k] for k in ("card_token", "payment", "customer") if k in body},
        hosted=kind == Kind.PAYMENT,
    )
    rendered = Card.render(payment, core.answer_outcome(payment), _base_url(request, code))
    return JsonResponse(rendered, status=402 if rendered["status"] == "declined" else 201)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def card_3ds(request, code, sandbox_id):
    payment = get_object_or_404(SandboxPayment, provider_code=code, sandbox_id=sandbox_id)
    if request.method == "POST":
        outcome = core.PAID if request.POST.get("action") == "authenticate" else core.DECLINED_HARD
        return _finish_page(payment, outcome, request)
    return _hosted_page(
        request,
        payment,
        title="3-D Secure",
        description="Your bank asks you to confirm this card payment.",
        buttons=[("authenticate", "Authenticate"), ("fail", "Fail authentication")],
    )


# --- e-wallet (form-encoded, hosted wallet page) ------------------------------------------


def _ewallet_auth(request, code):
    provider = core.provider(code)
    if request.POST.get("merchant_id") != provider.merchant_id:
        return None
    if not core.api_key_matches(provider, request.POST.get("api_password", "")):
        return None
    return provider


def _form_response(fields: dict, status=200) -> HttpResponse:
    return HttpResponse(
        urlencode(fields), status=status, content_type="application/x-www-form-urlencoded"
    )


@csrf_exempt
@require_http_methods(["POST"])
def ewallet_api(request, code, action):
    provider = _ewallet_auth(request, code)
    if provider is None:
        return HttpResponse(
            "403 invalid merchant credentials", status=403, content_type="text/plain"
        )
    post = request.POST
    if action == "query":
        found = SandboxPayment.objects.filter(
            provider_code=code,
            kind=post.get("type", "payment"),
            merchant_reference=post.get("trn_id", ""),
        ).first()
        if found is None:
            return _form_response({"found": "0"})
        return _form_response(
            {"found": "1", **Ewallet.fields(found, found.status, provider.merchant_id)}
        )
    amount = _decimal(post.get("amount"))
    if (
        amount is None
        or not post.get("transaction_id")
        or not post.get("status_url")
        or not _known_currency(post.get("currency"))
    ):
        return HttpResponse(
            "400 amount, currency, transaction_id and status_url required",
            status=400,
            content_type="text/plain",
        )
    kind, prefix = {
        "payment": (Kind.PAYMENT, "sid"),
        "transfer": (Kind.PAYOUT, "tr"),
        "refund": (Kind.REFUND, "rf"),
    }[action]
    payment = _start(
        code=code,
        kind=kind,
        prefix=prefix,
        reference=post["transaction_id"],
        amount=amount,
        currency=post["currency"],
        notify_url=post["status_url"],
        return_url=post.get("return_url", ""),
        data={"account": post.get("bnf_account", ""), "customer": post.get("customer", "")},
        hosted=kind == Kind.PAYMENT,
    )
    if kind == Kind.PAYMENT:
        return _form_response({"sid": payment.sandbox_id})
    return _form_response(
        Ewallet.fields(payment, core.answer_outcome(payment), provider.merchant_id)
    )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def ewallet_page(request, code):
    payment = get_object_or_404(
        SandboxPayment, provider_code=code, sandbox_id=request.GET.get("sid", "")
    )
    if request.method == "POST":
        outcome = core.PAID if request.POST.get("action") == "pay" else core.CANCELLED
        return _finish_page(payment, outcome, request)
    return _hosted_page(
        request,
        payment,
        title="E-wallet",
        description="Log in to your wallet and confirm the payment.",
        buttons=[("pay", "Pay now"), ("cancel", "Cancel")],
    )


# --- open banking (OAuth2 bearer, consent page, ISO 20022) --------------------------------

_TOKEN_SALT = "sandbox.open-banking"  # noqa: S105 (a signing namespace)


@csrf_exempt
@require_http_methods(["POST"])
def ob_token(request, code):
    provider = core.provider(code)
    if (
        request.POST.get("grant_type") != "client_credentials"
        or request.POST.get("client_id") != provider.merchant_id
        or not core.api_key_matches(provider, request.POST.get("client_secret", ""))
    ):
        return JsonResponse({"error": "invalid_client"}, status=401)
    token = signing.dumps({"provider": code}, salt=_TOKEN_SALT)
    return JsonResponse({"access_token": token, "token_type": "Bearer", "expires_in": 300})


def _ob_auth(request, code) -> bool:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return False
    try:
        claims = signing.loads(header[7:], salt=_TOKEN_SALT, max_age=300)
    except signing.BadSignature:
        return False
    return claims.get("provider") == code


@csrf_exempt
@require_http_methods(["GET", "POST"])
def ob_objects(request, code, collection):
    kind, prefix = {
        "payments": (Kind.PAYMENT, "obp"),
        "payouts": (Kind.PAYOUT, "obo"),
        "refunds": (Kind.REFUND, "obr"),
    }[collection]
    if not _ob_auth(request, code):
        return JsonResponse({"error": "invalid_token"}, status=401)
    base = _base_url(request, code) + "ob/"
    if request.method == "GET":
        found = SandboxPayment.objects.filter(
            provider_code=code, kind=kind, merchant_reference=request.GET.get("reference", "")
        )
        return JsonResponse({"data": [OpenBanking.render(p, base_url=base) for p in found]})
    try:
        body = json.loads(request.body)
        amount = _decimal(body["amount"]["value"])
        currency = body["amount"]["currency"]
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "invalid_request"}, status=400)
    if (
        amount is None
        or not body.get("reference")
        or not body.get("webhook_uri")
        or not _known_currency(currency)
    ):
        return JsonResponse({"error": "invalid_request"}, status=400)
    payment = _start(
        code=code,
        kind=kind,
        prefix=prefix,
        reference=body["reference"],
        amount=amount,
        currency=currency,
        notify_url=body["webhook_uri"],
        return_url=body.get("redirect_uri", ""),
        data={"creditor": body.get("creditor", {}), "customer": body.get("customer", "")},
        hosted=kind == Kind.PAYMENT,
    )
    return JsonResponse(OpenBanking.render(payment, core.answer_outcome(payment), base), status=201)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def ob_consent(request, code, sandbox_id):
    payment = get_object_or_404(SandboxPayment, provider_code=code, sandbox_id=sandbox_id)
    if request.method == "POST":
        outcome = core.PAID if request.POST.get("action") == "approve" else core.CANCELLED
        return _finish_page(payment, outcome, request)
    return _hosted_page(
        request,
        payment,
        title="Sandbox Bank: payment consent",
        description="Approve this payment from your bank account.",
        buttons=[("approve", "Approve"), ("deny", "Deny")],
    )


# --- crypto (BTCPay-style invoices) -------------------------------------------------------


def _crypto_auth(request, code, store) -> bool:
    provider = core.provider(code)
    header = request.headers.get("Authorization", "")
    return (
        store == provider.merchant_id
        and header.startswith("token ")
        and core.api_key_matches(provider, header[6:])
    )


@csrf_exempt
@require_http_methods(["GET", "POST"])
def crypto_objects(request, code, store, collection):
    kind = Kind.PAYMENT if collection == "invoices" else Kind.PAYOUT
    if not _crypto_auth(request, code, store):
        return JsonResponse({"message": "Unauthorized"}, status=401)
    base = _base_url(request, code)

    def render_one(p, outcome=None):
        if kind == Kind.PAYMENT:
            return Crypto.invoice(p, outcome, base_url=base)
        return Crypto.payout(p, outcome)

    if request.method == "GET":
        found = SandboxPayment.objects.filter(
            provider_code=code, kind=kind, merchant_reference=request.GET.get("orderId", "")
        )
        return JsonResponse([render_one(p) for p in found], safe=False)
    try:
        body = json.loads(request.body)
        reference = body["metadata"]["orderId"]
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"message": "metadata.orderId is required"}, status=400)
    amount = _decimal(body.get("amount"))
    currency = body.get("currency") or body.get("paymentMethod", "")
    if amount is None or not body.get("notificationURL") or not _known_currency(currency):
        return JsonResponse({"message": "amount and notificationURL are required"}, status=400)
    minutes = int((body.get("checkout") or {}).get("expirationMinutes") or 15)
    payment = _start(
        code=code,
        kind=kind,
        prefix="inv" if kind == Kind.PAYMENT else "pyt",
        reference=reference,
        amount=amount,
        currency=currency,
        notify_url=body["notificationURL"],
        return_url=(body.get("checkout") or {}).get("redirectURL", ""),
        data={
            "address": body.get("destination")
            or f"sandbox-{currency.lower()}-address-{reference[-8:]}",
            "expires_at": int((timezone.now() + timedelta(minutes=minutes)).timestamp()),
        },
        hosted=kind == Kind.PAYMENT,
    )
    return JsonResponse(render_one(payment, core.answer_outcome(payment)))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def crypto_invoice_page(request, code, sandbox_id):
    from .tasks import send_webhook

    payment = get_object_or_404(
        SandboxPayment, provider_code=code, sandbox_id=sandbox_id, kind=Kind.PAYMENT
    )
    if request.method == "POST" and payment.status == core.PENDING:
        action = request.POST.get("action")
        exact = payment.amount
        unit = minor_unit(payment.currency)
        if action == "less":
            core.settle(payment, core.PAID, amount_paid=(exact / 2).quantize(unit, ROUND_DOWN))
        elif action == "more":
            core.settle(
                payment, core.PAID, amount_paid=(exact * Decimal("1.2")).quantize(unit, ROUND_DOWN)
            )
        elif action == "late":
            # The invoice expires first; the payment is seen on chain afterwards.
            core.settle(payment, core.EXPIRED)
            payment.status = core.PAID
            payment.amount_paid = exact
            payment.data = {**payment.data, "paid_late": True}
            payment.save()
            send_webhook.apply_async((payment.pk, core.PAID, True), countdown=1)
        elif action == "expire":
            core.settle(payment, core.EXPIRED)
        else:
            core.settle(payment, core.PAID, amount_paid=exact)
        return HttpResponseRedirect(payment.return_url or "/")
    return _hosted_page(
        request,
        payment,
        title="Crypto invoice",
        asks_payer=False,
        description=f"Send {payment.amount} {payment.currency} to {payment.data.get('address')}.",
        buttons=[
            ("exact", "Pay exact"),
            ("less", "Pay less (half)"),
            ("more", "Pay more (+20%)"),
            ("late", "Pay late (after expiry)"),
            ("expire", "Let it expire"),
        ],
    )
