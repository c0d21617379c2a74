"""A simulated BTCPay Server store speaking the Greenfield API v1 (docs/providers/btcpay.md).

What it serves, relative to the provider's base URL, as BTCPay does:
- `POST/GET api/v1/stores/{storeId}/invoices` (search by `orderId`), `GET …/invoices/{id}`,
  `GET …/invoices/{id}/payment-methods`, `POST …/invoices/{id}/status` (mark Invalid or
  Settled), each also under `api/v1/invoices/{id}…` where BTCPay resolves the store itself;
- `POST/GET api/v1/stores/{storeId}/payouts`, `GET …/payouts/{id}` (and `api/v1/payouts/{id}`);
- the checkout page `i/{invoiceId}` (pay exact / less / more / late / let it expire).

Auth as Greenfield: `Authorization: token <key>`; no or an unknown key → 401
`{"code": "unauthenticated"}`, a key used on another store → 403 `{"code":
"missing-permission"}`; validation errors → 422 `[{"path", "message"}]`; other refusals → 400
`{"code", "message"}`; unknown objects → 404 `invoice-not-found` / `payout-not-found`.

The store has one webhook, pointed at our endpoint with the provider's webhook secret, as an
operator sets it up in BTCPay. Deliveries are indented camel-case JSON signed
`BTCPay-Sig: sha256=<hex HMAC-SHA256>`; a resent event gets a new `deliveryId`, keeps
`originalDeliveryId` and says `isRedelivery: true` (BTCPay's WebhookSender).

Payments honour the invoice's speed policy: a payment is Settled once its (simulated)
confirmations reach what the policy waits for on its chain; paid payments start 20 deep and
a test may make them shallower through `SandboxPayment.data["confirmations"]`.
"""

import hashlib
import json
import secrets
import time
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

from django.db import transaction
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from payments.instruments import _BECH32, _bech32_polymod
from payments.providers.base import hmac_sha256, provider_secret
from wallets.money import currency_exponent, minor_unit

from . import core
from .models import SandboxPayment

Kind = SandboxPayment.Kind

PROTOCOL = "btcpay"
# Paid payments are this deep unless a test says otherwise: past every policy's threshold.
DEEP = 20
SPEED_POLICIES = ("HighSpeed", "MediumSpeed", "LowMediumSpeed", "LowSpeed")
# Confirmations a policy waits for, per chain (Greenfield SpeedPolicy for bitcoin; the BTCPay
# USDt plugin's table for EVM chains).
POLICY_DEPTH = {
    "BTC": {"HighSpeed": 0, "MediumSpeed": 1, "LowMediumSpeed": 2, "LowSpeed": 6},
    "ETH": {"HighSpeed": 2, "MediumSpeed": 6, "LowMediumSpeed": 12, "LowSpeed": 20},
    "USDT": {"HighSpeed": 2, "MediumSpeed": 6, "LowMediumSpeed": 12, "LowSpeed": 20},
}
STORE_DEFAULT_POLICY = "MediumSpeed"  # BTCPay's store default
STORE_DEFAULT_EXPIRATION_MINUTES = 15
STORE_DEFAULT_MONITORING_MINUTES = 1440

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(raw: bytes) -> str:
    """Bitcoin's Base58, as BTCPay encodes its ids (NBitcoin Encoders.Base58)."""
    number = int.from_bytes(raw, "big")
    text = ""
    while number:
        number, rest = divmod(number, 58)
        text = _B58[rest] + text
    return "1" * (len(raw) - len(raw.lstrip(b"\x00"))) + text


def credentials() -> dict:
    """A Greenfield API key (20 random bytes, hex), a store id (32 bytes, Base58) and a
    webhook secret (16 bytes, Base58), as BTCPay generates them."""
    return {
        "api_key": secrets.token_hex(20),
        "webhook_secret": base58(secrets.token_bytes(16)),
        "merchant_id": base58(secrets.token_bytes(32)),
        "options": {},
    }


# --- addresses ------------------------------------------------------------------------------


def _bech32_address(program: bytes) -> str:
    """A valid P2WPKH mainnet address (BIP 173) for a 20-byte program."""
    data, accumulator, bits = [0], 0, 0
    for byte in program:
        accumulator = (accumulator << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            data.append((accumulator >> bits) & 31)
    if bits:
        data.append((accumulator << (5 - bits)) & 31)
    hrp = "bc"
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _bech32_polymod(expanded + data + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[d] for d in data + checksum)


def _address(currency: str, seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    if currency == "BTC":
        return _bech32_address(digest[:20])
    return "0x" + digest[:20].hex()


# --- errors and auth ------------------------------------------------------------------------


def _error(status: int, code: str, message: str, **extra) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, **extra}, status=status)


def _validation(errors: list[tuple[str, str]]) -> JsonResponse:
    return JsonResponse([{"path": p, "message": m} for p, m in errors], status=422, safe=False)


def _refused(request, code: str, store_id: str | None, permission: str) -> JsonResponse | None:
    """None when the request may go on; else Greenfield's 401 or 403 answer."""
    provider = core.provider(code)
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if not header:
        return _error(
            401, "unauthenticated", "Authentication is required for accessing this endpoint"
        )
    if scheme.lower() != "token" or not key or not core.api_key_matches(provider, key.strip()):
        return _error(401, "unauthenticated", "ApiKey authentication failed: Unknown API Key")
    if store_id is not None and store_id != provider.merchant_id:
        return _error(
            403,
            "missing-permission",
            "Insufficient API Permissions. Please use an API key with permission "
            f'"{permission}". You can create an API key in your account\'s settings / Api Keys.',
            missingPermission=permission,
        )
    return None


def _body(request) -> dict | None:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount.quantize(minor_unit(currency), rounding=ROUND_DOWN):f}"


def _ts(moment) -> int:
    return int(moment.timestamp())


# --- invoices: state ------------------------------------------------------------------------


def _depth_needed(payment: SandboxPayment) -> int:
    table = POLICY_DEPTH.get(payment.currency, POLICY_DEPTH["BTC"])
    return table.get(payment.data.get("speed_policy", STORE_DEFAULT_POLICY), 1)


def _not_yet_on_chain(payment: SandboxPayment) -> bool:
    """A late payment is broadcast a moment after the invoice expired."""
    return bool(payment.data.get("late")) and time.time() < payment.data.get("paid_at", 0)


def _payments(payment: SandboxPayment, outcome: str) -> list[dict]:
    """The payments BTCPay would list for the invoice (accounted ones only)."""
    if payment.amount_paid is None or outcome not in (core.PAID, core.PROCESSING, core.CANCELLED):
        return []
    if _not_yet_on_chain(payment):
        return []
    confirmed = outcome != core.PROCESSING and payment.data.get(
        "confirmations", DEEP
    ) >= _depth_needed(payment)
    txid = hashlib.sha256(f"tx:{payment.sandbox_id}".encode()).hexdigest()
    return [
        {
            "id": f"{txid}-0",
            "receivedDate": int(payment.data.get("paid_at", _ts(payment.created_at))),
            "value": _money(payment.amount_paid, payment.currency),
            "fee": _money(Decimal(0), payment.currency),
            "status": "Settled" if confirmed else "Processing",
            "destination": payment.data.get("destination", ""),
        }
    ]


def _paid(payment: SandboxPayment, outcome: str) -> Decimal:
    return sum(
        (Decimal(p["value"]) - Decimal(p["fee"]) for p in _payments(payment, outcome)),
        Decimal(0),
    )


def invoice_status(payment: SandboxPayment, outcome: str | None = None) -> tuple[str, str]:
    """(status, additionalStatus) of the invoice, as BTCPay's InvoiceWatcher would have it."""
    outcome = outcome or payment.status
    data = payment.data
    paid = payment.amount_paid
    if outcome == core.CANCELLED:
        return "Invalid", "Marked"
    if outcome == core.DECLINED_HARD:
        return "Invalid", "None"
    if outcome == core.EXPIRED:
        return "Expired", "PaidPartial" if paid else "None"
    if outcome == core.PENDING:
        return "New", "PaidPartial" if paid else "None"
    if outcome == core.PROCESSING:
        return "Processing", "PaidOver" if paid and paid > payment.amount else "None"
    if outcome == core.PAID:
        if data.get("marked") == "Settled":
            return "Settled", "Marked"
        if data.get("late"):
            return "Expired", "None" if _not_yet_on_chain(payment) else "PaidLate"
        if paid is not None and paid < payment.amount:
            # The player sent less and the invoice ran out: BTCPay keeps it partly paid.
            return "Expired", "PaidPartial"
        over = "PaidOver" if paid is not None and paid > payment.amount else "None"
        if any(p["status"] != "Settled" for p in _payments(payment, outcome)):
            return "Processing", over
        return "Settled", over
    return "New", "None"


def _markable(status: str, additional: str) -> list[str]:
    marks = []
    if status in ("New", "Processing", "Expired", "Invalid") or (
        additional == "Marked" and status != "Settled"
    ):
        marks.append("Settled")
    if status in ("New", "Processing", "Expired") or (
        additional == "Marked" and status != "Invalid"
    ):
        marks.append("Invalid")
    return marks


def render_invoice(payment: SandboxPayment, base: str, outcome: str | None = None) -> dict:
    status, additional = invoice_status(payment, outcome)
    data = payment.data
    created = data.get("created_time", _ts(payment.created_at))
    expiration = data.get("expiration_time", created + 60 * STORE_DEFAULT_EXPIRATION_MINUTES)
    monitoring = data.get("monitoring_minutes", STORE_DEFAULT_MONITORING_MINUTES)
    return {
        "id": payment.sandbox_id,
        "storeId": data.get("store_id", ""),
        "amount": f"{payment.amount.normalize():f}",
        "paidAmount": _money(_paid(payment, outcome or payment.status), payment.currency),
        "currency": payment.currency,
        "type": "Standard",
        "checkoutLink": f"{base}i/{payment.sandbox_id}",
        "createdTime": created,
        "expirationTime": expiration,
        "monitoringExpiration": expiration + 60 * monitoring,
        "status": status,
        "additionalStatus": additional,
        "availableStatusesForManualMarking": _markable(status, additional),
        "archived": False,
        "metadata": data.get("metadata", {}),
        "checkout": {
            "speedPolicy": data.get("speed_policy", STORE_DEFAULT_POLICY),
            "paymentMethods": [data.get("payment_method", f"{payment.currency}-CHAIN")],
            "defaultPaymentMethod": None,
            "expirationMinutes": (expiration - created) // 60,
            "monitoringMinutes": monitoring,
            "paymentTolerance": data.get("payment_tolerance", 0.0),
            "redirectURL": payment.return_url or None,
            "redirectAutomatically": data.get("redirect_automatically", False),
            "defaultLanguage": None,
        },
        "receipt": {"enabled": True, "showQR": None, "showPayments": None},
    }


def render_payment_methods(payment: SandboxPayment) -> list[dict]:
    currency = payment.currency
    payments = _payments(payment, payment.status)
    paid = _paid(payment, payment.status)
    address = payment.data.get("destination", "")
    due = payment.amount - paid
    link = f"bitcoin:{address}?amount={_money(max(due, Decimal(0)), currency)}"
    return [
        {
            "paymentMethodId": payment.data.get("payment_method", f"{currency}-CHAIN"),
            "currency": currency,
            "destination": address,
            "paymentLink": link if currency == "BTC" else None,
            "rate": "1",
            "paymentMethodPaid": _money(paid, currency),
            "totalPaid": _money(paid, currency),
            "due": f"{due.quantize(minor_unit(currency)):f}",
            "amount": _money(payment.amount, currency),
            "paymentMethodFee": _money(Decimal(0), currency),
            "payments": payments,
            "activated": True,
            "additionalData": {},
        }
    ]


# --- invoices: views ------------------------------------------------------------------------


def _invoice(code: str, invoice_id: str) -> SandboxPayment | None:
    return SandboxPayment.objects.filter(
        provider_code=code, kind=Kind.PAYMENT, sandbox_id=invoice_id
    ).first()


def _not_found() -> JsonResponse:
    return _error(404, "invoice-not-found", "The invoice was not found")


def _check_invoice_request(body: dict) -> tuple[list, dict]:
    """Validation as GreenfieldInvoiceController.CreateInvoice does it → (errors, checkout)."""
    errors = []
    amount = core.positive_decimal(body.get("amount"))
    if amount is None or isinstance(body.get("amount"), bool):
        errors.append(("amount", "The amount should be more than 0."))
    elif amount > Decimal("79228162514264337593543950335"):
        errors.append(("amount", "The amount should less than 79228162514264337593543950335."))
    if not core.known_currency(body.get("currency")):
        errors.append(("currency", "Invalid currency"))
    metadata = body.get("metadata", {})
    if metadata is not None and not isinstance(metadata, dict):
        errors.append(("metadata", "metadata should be an object"))
    elif isinstance(metadata, dict) and not isinstance(metadata.get("orderId", ""), str | None):
        errors.append(("metadata.orderId", "orderId should be a string"))
    checkout = body.get("checkout") or {}
    if not isinstance(checkout, dict):
        return [*errors, ("checkout", "checkout should be an object")], {}
    policy = checkout.get("speedPolicy")
    if policy is not None and policy not in SPEED_POLICIES:
        errors.append(("checkout.speedPolicy", "Invalid speed policy"))
    minutes = checkout.get("expirationMinutes")
    if minutes is not None and (
        isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes * 60 < 30
    ):
        errors.append(("checkout.expirationMinutes", "Expiration time must be at least 30 seconds"))
    monitoring = checkout.get("monitoringMinutes")
    if monitoring is not None and (
        isinstance(monitoring, bool) or not isinstance(monitoring, int | float) or monitoring < 0
    ):
        errors.append(("checkout.monitoringMinutes", "Invalid monitoring time"))
    tolerance = checkout.get("paymentTolerance")
    if tolerance is not None and (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not 0 <= tolerance <= 100
    ):
        errors.append(
            ("checkout.paymentTolerance", "PaymentTolerance can only be between 0 and 100 percent")
        )
    methods = checkout.get("paymentMethods")
    if methods is not None:
        if not isinstance(methods, list):
            errors.append(("checkout.paymentMethods", "Invalid PaymentMethodId"))
        else:
            for i, method in enumerate(methods):
                if not isinstance(method, str) or "-" not in method:
                    errors.append((f"checkout.paymentMethods[{i}]", "Invalid PaymentMethodId"))
    redirect = checkout.get("redirectURL")
    if redirect is not None and not isinstance(redirect, str):
        errors.append(("checkout.redirectURL", "Invalid redirect URL"))
    return errors, checkout


def _create_invoice(request, code: str, store_id: str) -> JsonResponse:
    body = _body(request)
    if body is None:
        return _validation([("", "The request body is not a JSON object")])
    errors, checkout = _check_invoice_request(body)
    if errors:
        return _validation(errors)
    currency = body["currency"]
    amount = Decimal(str(body["amount"]))
    if amount != amount.quantize(minor_unit(currency), rounding=ROUND_DOWN):
        return _validation([("amount", f"{currency} has {currency_exponent(currency)} decimals")])
    method = f"{currency}-CHAIN"
    requested = checkout.get("paymentMethods") or [method]
    scenario = core.scenario_for(amount, currency)
    if method not in requested or scenario == core.SOFT_DECLINE:
        # What BTCPay answers when no payment method or rate source can serve the invoice.
        return _error(
            400,
            "generic-error",
            "Error retrieving a matching payment method or rate.\n"
            f"{method}: The rate source did not answer in time\n",
        )
    if scenario == core.HARD_DECLINE:
        return _error(
            400,
            "generic-error",
            "No wallet has been linked to your BTCPay Store. See the following link for more "
            "information on how to connect your store and wallet. "
            "(https://docs.btcpayserver.org/WalletSetup/)\n",
        )
    from payments.services.common import webhook_url

    provider = core.provider(code)
    metadata = body.get("metadata") or {}
    reference = metadata.get("orderId") or f"no-order-{secrets.token_hex(8)}"
    now = timezone.now()
    minutes = checkout.get("expirationMinutes") or STORE_DEFAULT_EXPIRATION_MINUTES
    payment = core.start(
        code=code,
        kind=Kind.PAYMENT,
        prefix="inv",
        reference=reference,
        amount=amount,
        currency=currency,
        # The store's webhook, configured in BTCPay to point at our endpoint.
        notify_url=webhook_url(provider),
        return_url=checkout.get("redirectURL") or "",
        data={
            "store_id": store_id,
            "metadata": metadata,
            "speed_policy": checkout.get("speedPolicy") or STORE_DEFAULT_POLICY,
            "payment_method": method,
            "payment_tolerance": checkout.get("paymentTolerance") or 0.0,
            "redirect_automatically": bool(checkout.get("redirectAutomatically")),
            "monitoring_minutes": checkout.get("monitoringMinutes")
            or STORE_DEFAULT_MONITORING_MINUTES,
            "created_time": _ts(now),
            "expiration_time": _ts(now + timedelta(minutes=minutes)),
            "destination": _address(currency, f"{store_id}:{reference}"),
        },
        hosted=True,
    )
    base = core.base_url(request, PROTOCOL, code)
    return JsonResponse(render_invoice(payment, base, core.answer_outcome(payment)))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def invoices(request, code, store_id):
    permission = (
        "btcpay.store.cancreateinvoice"
        if request.method == "POST"
        else "btcpay.store.canviewinvoices"
    )
    if refused := _refused(request, code, store_id, permission):
        return refused
    if request.method == "POST":
        return _create_invoice(request, code, store_id)
    found = SandboxPayment.objects.filter(provider_code=code, kind=Kind.PAYMENT)
    order_ids = request.GET.getlist("orderId")
    if order_ids:
        found = found.filter(merchant_reference__in=order_ids)
    statuses = set(request.GET.getlist("status"))
    base = core.base_url(request, PROTOCOL, code)
    rendered = [render_invoice(p, base) for p in found.order_by("-created_at")[:1000]]
    if statuses:
        rendered = [i for i in rendered if i["status"] in statuses]
    return JsonResponse(rendered, safe=False)


@csrf_exempt
@require_http_methods(["GET"])
def invoice(request, code, invoice_id, store_id=None):
    if refused := _refused(request, code, store_id, "btcpay.store.canviewinvoices"):
        return refused
    payment = _invoice(code, invoice_id)
    if payment is None:
        return _not_found()
    return JsonResponse(render_invoice(payment, core.base_url(request, PROTOCOL, code)))


@csrf_exempt
@require_http_methods(["GET"])
def payment_methods(request, code, invoice_id, store_id=None):
    if refused := _refused(request, code, store_id, "btcpay.store.canviewinvoices"):
        return refused
    payment = _invoice(code, invoice_id)
    if payment is None:
        return _not_found()
    return JsonResponse(render_payment_methods(payment), safe=False)


@csrf_exempt
@require_http_methods(["POST"])
def mark_status(request, code, invoice_id, store_id=None):
    if refused := _refused(request, code, store_id, "btcpay.store.canmodifyinvoices"):
        return refused
    body = _body(request)
    wanted = body.get("status") if body else None
    if wanted not in ("Invalid", "Settled"):
        return _validation([("status", "The status should be Invalid or Settled")])
    with transaction.atomic():
        payment = (
            SandboxPayment.objects.select_for_update()
            .filter(provider_code=code, kind=Kind.PAYMENT, sandbox_id=invoice_id)
            .first()
        )
        if payment is None:
            return _not_found()
        status, additional = invoice_status(payment)
        if wanted not in _markable(status, additional):
            return _validation(
                [
                    (
                        "status",
                        "Status can only be marked to invalid or settled within certain "
                        "conditions.",
                    )
                ]
            )
        payment.data = {**payment.data, "marked": wanted}
        payment.status = core.CANCELLED if wanted == "Invalid" else core.PAID
        payment.save()
        core.schedule_webhooks(payment, payment.status)
    return JsonResponse(render_invoice(payment, core.base_url(request, PROTOCOL, code)))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def checkout_page(request, code, invoice_id):
    """The checkout: the player pays the address (exactly, half, +20 %, after expiry) or
    lets the invoice expire."""
    from .tasks import send_webhook

    payment = get_object_or_404(
        SandboxPayment, provider_code=code, kind=Kind.PAYMENT, sandbox_id=invoice_id
    )
    if request.method == "POST" and payment.status == core.PENDING:
        action = request.POST.get("action")
        exact = payment.amount
        unit = minor_unit(payment.currency)
        paid_at = int(time.time())
        if action == "less":
            core.settle(
                payment,
                core.PAID,
                amount_paid=(exact / 2).quantize(unit, ROUND_DOWN),
                paid_at=paid_at,
            )
        elif action == "more":
            core.settle(
                payment,
                core.PAID,
                amount_paid=(exact * Decimal("1.2")).quantize(unit, ROUND_DOWN),
                paid_at=paid_at,
            )
        elif action == "late":
            # The invoice expires first; the payment is seen on chain afterwards.
            core.settle(payment, core.EXPIRED)
            payment.status = core.PAID
            payment.amount_paid = exact
            payment.data = {**payment.data, "late": True, "paid_at": time.time() + 1.0}
            payment.save()
            pk = payment.pk
            transaction.on_commit(
                lambda: send_webhook.apply_async((pk, core.PAID, True), countdown=2)
            )
        elif action == "expire":
            core.settle(payment, core.EXPIRED)
        else:
            core.settle(payment, core.PAID, amount_paid=exact, paid_at=paid_at)
        return HttpResponseRedirect(payment.return_url or "/")
    address = payment.data.get("destination", "")
    return core.hosted_page(
        request,
        payment,
        title="BTCPay invoice",
        asks_payer=False,
        description=f"Send {payment.amount.normalize():f} {payment.currency} to {address}.",
        buttons=[
            ("exact", "Pay exact"),
            ("less", "Pay less (half)"),
            ("more", "Pay more (+20%)"),
            ("late", "Pay late (after expiry)"),
            ("expire", "Let it expire"),
        ],
    )


# --- payouts --------------------------------------------------------------------------------

_PAYOUT_STATE = {
    core.PAID: "Completed",
    core.DECLINED_SOFT: "Cancelled",
    core.CANCELLED: "Cancelled",
}


def payout_state(payment: SandboxPayment, outcome: str | None = None) -> str:
    outcome = outcome or payment.status
    if outcome in _PAYOUT_STATE:
        return _PAYOUT_STATE[outcome]
    return "AwaitingPayment" if payment.data.get("approved") else "AwaitingApproval"


def render_payout(payment: SandboxPayment, outcome: str | None = None) -> dict:
    state = payout_state(payment, outcome)
    proof = None
    if state == "Completed":
        txid = hashlib.sha256(f"payout:{payment.sandbox_id}".encode()).hexdigest()
        proof = {"proofType": "PayoutTransactionOnChainBlob", "transactionId": txid}
    return {
        "id": payment.sandbox_id,
        "revision": 0,
        "pullPaymentId": None,
        "date": payment.data.get("created_time", _ts(payment.created_at)),
        "destination": payment.data.get("destination", ""),
        "originalCurrency": payment.currency,
        "originalAmount": _money(payment.amount, payment.currency),
        "payoutCurrency": payment.currency,
        "payoutAmount": _money(payment.amount, payment.currency)
        if state != "AwaitingApproval"
        else None,
        "payoutMethodId": payment.data.get("payout_method", f"{payment.currency}-CHAIN"),
        "state": state,
        "paymentProof": proof,
        "metadata": payment.data.get("metadata", {}),
    }


def _create_payout(request, code: str, store_id: str) -> JsonResponse:
    body = _body(request)
    if body is None:
        return _validation([("", "The request body is not a JSON object")])
    method = body.get("payoutMethodId")
    currency = method.rsplit("-", 1)[0] if isinstance(method, str) and "-" in method else ""
    if (
        not isinstance(method, str)
        or not method.endswith("-CHAIN")
        or not core.known_currency(currency)
    ):
        return _validation([("PayoutMethodId", "Invalid payment method")])
    destination = body.get("destination")
    if not isinstance(destination, str) or not destination.strip():
        return _validation(
            [("Destination", "The destination is invalid for the payment specified")]
        )
    amount = core.positive_decimal(body.get("amount"))
    if amount is None or isinstance(body.get("amount"), bool):
        return _validation([("Amount", "Amount too small (should be at least 0)")])
    if amount != amount.quantize(minor_unit(currency), rounding=ROUND_DOWN):
        return _validation([("Amount", f"{currency} has {currency_exponent(currency)} decimals")])
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        return _validation([("Metadata", "metadata should be an object")])
    if core.scenario_for(amount, currency) == core.HARD_DECLINE:
        return _validation(
            [("Destination", "The destination is invalid for the payment specified")]
        )
    from payments.services.common import webhook_url

    provider = core.provider(code)
    reference = metadata.get("orderId") if isinstance(metadata.get("orderId"), str) else ""
    payout = core.start(
        code=code,
        kind=Kind.PAYOUT,
        prefix="pyt",
        reference=reference or f"no-order-{secrets.token_hex(8)}",
        amount=amount,
        currency=currency,
        notify_url=webhook_url(provider),
        data={
            "store_id": store_id,
            "metadata": metadata,
            "destination": destination.strip(),
            "payout_method": method,
            "approved": body.get("approved") is True,
            "created_time": int(time.time()),
        },
    )
    # A new payout waits for BTCPay's payout processor; only the instant scenario is paid by
    # the time the answer leaves.
    shown = payout.status if payout.scenario == core.INSTANT else core.PENDING
    return JsonResponse(render_payout(payout, shown))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def payouts(request, code, store_id):
    permission = (
        "btcpay.store.canmanagepayouts"
        if request.method == "POST"
        else "btcpay.store.canviewpayouts"
    )
    if refused := _refused(request, code, store_id, permission):
        return refused
    if request.method == "POST":
        return _create_payout(request, code, store_id)
    include_cancelled = request.GET.get("includeCancelled", "false").lower() == "true"
    found = SandboxPayment.objects.filter(provider_code=code, kind=Kind.PAYOUT)
    rendered = [render_payout(p) for p in found.order_by("-created_at")[:1000]]
    if not include_cancelled:
        rendered = [p for p in rendered if p["state"] != "Cancelled"]
    return JsonResponse(rendered, safe=False)


@csrf_exempt
@require_http_methods(["GET"])
def payout(request, code, payout_id, store_id=None):
    if refused := _refused(request, code, store_id, "btcpay.store.canviewpayouts"):
        return refused
    found = SandboxPayment.objects.filter(
        provider_code=code, kind=Kind.PAYOUT, sandbox_id=payout_id
    ).first()
    if found is None:
        return _error(404, "payout-not-found", "The payout was not found")
    return JsonResponse(render_payout(found))


urlpatterns = [
    path("api/v1/stores/<str:store_id>/invoices", invoices),
    path("api/v1/stores/<str:store_id>/invoices/<str:invoice_id>", invoice),
    path("api/v1/invoices/<str:invoice_id>", invoice),
    path("api/v1/stores/<str:store_id>/invoices/<str:invoice_id>/payment-methods", payment_methods),
    path("api/v1/invoices/<str:invoice_id>/payment-methods", payment_methods),
    path("api/v1/stores/<str:store_id>/invoices/<str:invoice_id>/status", mark_status),
    path("api/v1/invoices/<str:invoice_id>/status", mark_status),
    path("api/v1/stores/<str:store_id>/payouts", payouts),
    path("api/v1/stores/<str:store_id>/payouts/<str:payout_id>", payout),
    path("api/v1/payouts/<str:payout_id>", payout),
    path("i/<str:invoice_id>", checkout_page),
]


# --- webhooks -------------------------------------------------------------------------------


def _invoice_events(payment: SandboxPayment, outcome: str) -> list[tuple[str, dict]]:
    """The events BTCPay fires for an invoice reaching `outcome`, in order, each with the
    fields its webhook class adds (WebhookInvoiceEvent.cs)."""
    data = payment.data
    paid = payment.amount_paid
    over = paid is not None and paid > payment.amount
    payment_fields = {}
    listed = _payments(payment, core.PAID if outcome == core.PENDING else outcome)
    if listed:
        payment_fields = {
            "afterExpiration": bool(data.get("late")),
            "paymentMethodId": data.get("payment_method", f"{payment.currency}-CHAIN"),
            "payment": listed[0],
        }
    if outcome == core.PENDING:
        if paid is None:
            return [("InvoiceCreated", {})]
        return [("InvoiceReceivedPayment", payment_fields)]
    if outcome == core.PROCESSING:
        return [
            ("InvoiceReceivedPayment", payment_fields),
            ("InvoiceProcessing", {"overPaid": over}),
        ]
    if outcome == core.EXPIRED:
        return [("InvoiceExpired", {"partiallyPaid": paid is not None})]
    if outcome == core.DECLINED_HARD:
        return [("InvoiceInvalid", {"manuallyMarked": False})]
    if outcome == core.CANCELLED:
        return [("InvoiceInvalid", {"manuallyMarked": True})]
    if outcome != core.PAID:
        return []  # declined at creation (no invoice exists), disputes (none on a chain)
    if data.get("marked") == "Settled":
        return [("InvoiceSettled", {"manuallyMarked": True, "overPaid": False})]
    received = [("InvoiceReceivedPayment", payment_fields)]
    confirmed = (
        [("InvoicePaymentSettled", payment_fields)]
        if listed and listed[0]["status"] == "Settled"
        else []
    )
    if data.get("late"):
        return received + confirmed
    if paid is not None and paid < payment.amount:
        return received + confirmed + [("InvoiceExpired", {"partiallyPaid": True})]
    processing = [("InvoiceProcessing", {"overPaid": over})]
    settled = [("InvoiceSettled", {"manuallyMarked": False, "overPaid": over})] if confirmed else []
    return received + processing + confirmed + settled


def _payout_events(payment: SandboxPayment, outcome: str) -> list[tuple[str, dict]]:
    created = ("PayoutCreated", {"payoutState": payout_state(payment, core.PENDING)})
    if outcome in (core.PENDING, core.PROCESSING):
        return [created]
    if outcome in _PAYOUT_STATE:
        return [created, ("PayoutUpdated", {"payoutState": _PAYOUT_STATE[outcome]})]
    return []


def _wrong_secret(secret: str) -> str:
    """A secret of BTCPay's format that is not the store's."""
    return base58(hashlib.sha256(f"wrong:{secret}".encode()).digest()[:16])


def webhooks(payment, outcome, *, provider, signed_right):
    """The deliveries of the store's one webhook for `payment` reaching `outcome`. The same
    event sent again is a redelivery: new deliveryId, same originalDeliveryId."""
    if payment.kind == Kind.PAYOUT:
        events = _payout_events(payment, outcome)
    elif payment.kind == Kind.PAYMENT:
        events = _invoice_events(payment, outcome)
    else:
        events = []  # no refunds in crypto
    if not events:
        return []
    secret = provider_secret(provider, "webhook_secret")
    if not signed_right:
        secret = _wrong_secret(secret)
    store_id = provider.merchant_id
    webhook_id = base58(hashlib.sha256(f"webhook:{store_id}".encode()).digest()[:16])
    deliveries = []
    with transaction.atomic():
        locked = SandboxPayment.objects.select_for_update().get(pk=payment.pk)
        sent = dict(locked.data.get("deliveries", {}))
        for event_type, fields in events:
            delivery_id = base58(secrets.token_bytes(16))
            key = f"{event_type}:{outcome}"
            original = sent.setdefault(key, delivery_id)
            body = {
                "deliveryId": delivery_id,
                "webhookId": webhook_id,
                "originalDeliveryId": original,
                "isRedelivery": original != delivery_id,
                "type": event_type,
                "timestamp": int(time.time()),
                "storeId": store_id,
            }
            if payment.kind == Kind.PAYOUT:
                body.update({"payoutId": payment.sandbox_id, "pullPaymentId": None, **fields})
            else:
                body.update(
                    {
                        "invoiceId": payment.sandbox_id,
                        "metadata": payment.data.get("metadata", {}),
                        **fields,
                    }
                )
            raw = json.dumps(body, indent=2).encode()
            deliveries.append(
                (
                    raw,
                    {
                        "Content-Type": "application/json",
                        "BTCPay-Sig": "sha256=" + hmac_sha256(secret, raw),
                        "User-Agent": "BTCPayServer/2.0 (sandbox)",
                    },
                )
            )
        locked.data = {**locked.data, "deliveries": sent}
        locked.save(update_fields=["data"])
    return deliveries
