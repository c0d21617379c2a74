"""The sandbox bank: an ASPSP speaking Berlin Group NextGenPSD2 XS2A PIS 1.3.x over HTTP.

Paths are relative to the provider's base URL (`/api/v1/sandbox/berlin_group/<code>/`):

    POST   v1/payments/{product}                  payment initiation (201)
    GET    v1/payments/{product}/{paymentId}         the payment, with its status
    GET    v1/payments/{product}/{paymentId}/status  transactionStatus
    DELETE v1/payments/{product}/{paymentId}         cancellation (204 / 405)
    GET/POST consent/{paymentId}                   the bank's SCA page (scaRedirect)

Products: `sepa-credit-transfers` and `instant-sepa-credit-transfers`; the other products the
standard names are refused as a bank that does not offer them would (403 PRODUCT_INVALID),
unknown ones 404 PRODUCT_UNKNOWN.

What it emulates, and how (docs/providers/berlin_group.md):
- eIDAS QSealC request signing: every call must carry `X-Request-ID` (UUID), `Date`, `Digest`
  (SHA-256 or SHA-512 of the body), `Signature` (draft-cavage-http-signatures-10, RSA, keyId
  `SN=<serial hex>,CA=<issuer DN>`, covering digest, x-request-id, date and the PSU/redirect
  headers sent) and `TPP-Signature-Certificate`. A real bank checks the certificate against
  the EU trusted lists; this one trusts exactly the certificate issued to the provider by
  `credentials()` (its options). The QWAC/mTLS layer cannot exist over plain HTTP and is not
  emulated.
- The PSU: a real bank knows its customer from their login. This bank's customers are our
  players, so it looks the player up by the deposit reference we send as end-to-end id (it
  shares our database) and pays from an IBAN derived from the player, unless the consent page
  is posted with a `payer` (an IBAN, or any text an IBAN is derived from).
- SCA exemptions: a payment from the operator's own account (debtorAccount = its collection
  account, PSU-Corporate-ID = its corporate id) is executed without a redirect (trusted
  beneficiary / secure corporate payment). A PSU payment whose scenario settles at once is a
  payment to a beneficiary the PSU has whitelisted.
- Status notifications are POSTed to `TPP-Notification-URI` unsigned, as the standard has no
  signature for them; `signed_right=False` sends a forged one, claiming the opposite outcome.
- SEPA credit transfers have no chargebacks: `DISPUTED`/`DISPUTE_WON` send nothing.
"""

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import uuid
from datetime import timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature as BadSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from django.db import transaction
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from payments.models import Deposit, PaymentProvider
from wallets.money import currency_exponent

from . import core
from .models import SandboxPayment

SCT = "sepa-credit-transfers"
SCT_INST = "instant-sepa-credit-transfers"
OFFERED_PRODUCTS = (SCT, SCT_INST)
# Products the standard defines that this bank does not offer.
OTHER_PRODUCTS = (
    "target-2-payments",
    "cross-border-credit-transfers",
    "pain.001-sepa-credit-transfers",
    "pain.001-instant-sepa-credit-transfers",
    "pain.001-target-2-payments",
    "pain.001-cross-border-credit-transfers",
)
OTHER_SERVICES = ("bulk-payments", "periodic-payments")

# What the IG lets a signature cover; the first three are required, the others whenever the
# request carries them.
REQUIRED_SIGNED = ("digest", "x-request-id", "date")
CONDITIONALLY_SIGNED = ("psu-id", "psu-corporate-id", "tpp-redirect-uri")
SIGNATURE_HASHES = {"rsa-sha256": hashes.SHA256, "rsa-sha512": hashes.SHA512}
DIGEST_HASHES = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
DATE_TOLERANCE = timedelta(minutes=5)

# Kept with the payment so tests can see what the TPP sent.
RECORDED_HEADERS = (
    "X-Request-ID",
    "Date",
    "Digest",
    "Signature",
    "PSU-IP-Address",
    "PSU-Corporate-ID",
    "TPP-Redirect-Preferred",
    "TPP-Redirect-URI",
    "TPP-Nok-Redirect-URI",
    "TPP-Notification-URI",
    "TPP-Notification-Content-Preferred",
    "TPP-Rejection-NoFunds-Preferred",
)

# Why a payment was rejected, as tppMessages: the Berlin Group code for a failed funds check
# (the TPP asked for TPP-Rejection-NoFunds-Preferred) and an ISO 20022 status reason for a
# hard rejection. A PSU who never finished SCA gets RJCT without a message (IG).
REJECTIONS = {
    core.DECLINED_SOFT: (
        "FUNDS_NOT_AVAILABLE",
        "Insufficient funds on the debtor account (ISO 20022 AM04).",
    ),
    core.DECLINED_HARD: ("AC04", "ClosedAccountNumber: the account is closed."),
}

_AMOUNT = re.compile(r"[0-9]{1,14}(\.[0-9]{1,3})?")
_SIGNATURE_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*"([^"]*)"\s*(?:,|$)')


class Refusal(Exception):
    """A request the bank refuses, with the NextGenPSD2 error body it answers."""

    def __init__(self, status: int, code: str, text: str, *, path: str = ""):
        super().__init__(text)
        self.status, self.code, self.text, self.path = status, code, text, path

    def response(self, request_id: str = "") -> JsonResponse:
        return error(self.status, self.code, self.text, path=self.path, request_id=request_id)


def error(status: int, code: str, text: str, *, path: str = "", request_id: str = ""):
    message = {"category": "ERROR", "code": code, "text": text[:500]}
    if path:
        message["path"] = path
    response = JsonResponse({"tppMessages": [message]}, status=status)
    if request_id:
        response["X-Request-ID"] = request_id
    return response


# --- the TPP's signature ------------------------------------------------------------------


def load_certificate(text: str) -> x509.Certificate:
    """A certificate as TPP-Signature-Certificate carries it: base64 DER, or PEM."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return x509.load_pem_x509_certificate(text.encode())
    return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))


def signature_params(header: str) -> dict[str, str]:
    params, position = {}, 0
    while position < len(header):
        match = _SIGNATURE_PARAM.match(header, position)
        if match is None or match.end() == position or match.group(1) in params:
            raise ValueError("malformed Signature header")
        params[match.group(1)] = match.group(2)
        position = match.end()
    for name in ("keyId", "algorithm", "headers", "signature"):
        if name not in params:
            raise ValueError(f"Signature has no {name}")
    return params


def key_id_matches(key_id: str, certificate: x509.Certificate) -> bool:
    serial, separator, issuer = key_id.partition(",CA=")
    if not separator or not serial.startswith("SN="):
        return False
    try:
        number = int(serial[3:], 16)
    except ValueError:
        return False
    return (
        number == certificate.serial_number
        and unquote(issuer) == certificate.issuer.rfc4514_string()
    )


def digest_matches(header: str, body: bytes) -> bool:
    """Every supported algorithm named matches the body, and at least one is named."""
    seen = False
    for part in header.split(","):
        algorithm, separator, value = part.strip().partition("=")
        if not separator:
            return False
        hasher = DIGEST_HASHES.get(algorithm.lower())
        if hasher is None:
            continue
        expected = base64.b64encode(hasher(body).digest())
        if not hmac.compare_digest(expected, value.encode("utf-8", "surrogateescape")):
            return False
        seen = True
    return seen


def signed_string(names: list[str], request) -> str:
    return "\n".join(f"{name}: {request.headers[name]}" for name in names)


def verify_tpp(request, provider: PaymentProvider) -> None:
    """Raise Refusal unless the request is signed with the provider's registered QSealC."""
    presented = request.headers.get("TPP-Signature-Certificate", "")
    if not presented:
        raise Refusal(401, "CERTIFICATE_MISSING", "TPP-Signature-Certificate is missing.")
    try:
        certificate = load_certificate(presented)
        registered = load_certificate((provider.options or {}).get("tpp_certificate", ""))
    except (ValueError, TypeError):
        raise Refusal(401, "CERTIFICATE_INVALID", "The certificate cannot be read.") from None
    if certificate.fingerprint(hashes.SHA256()) != registered.fingerprint(hashes.SHA256()):
        raise Refusal(401, "CERTIFICATE_INVALID", "The certificate is not one we trust.")
    now = timezone.now()
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise Refusal(401, "CERTIFICATE_EXPIRED", "The certificate is not valid now.")
    header = request.headers.get("Signature", "")
    if not header:
        raise Refusal(401, "SIGNATURE_MISSING", "The request is not signed.")
    if not request.headers.get("Digest"):
        raise Refusal(401, "SIGNATURE_MISSING", "Digest is missing.")
    try:
        params = signature_params(header)
    except ValueError as exc:
        raise Refusal(401, "SIGNATURE_INVALID", str(exc)) from None
    if not key_id_matches(params["keyId"], certificate):
        raise Refusal(401, "SIGNATURE_INVALID", "keyId does not name the certificate.")
    hash_class = SIGNATURE_HASHES.get(params["algorithm"].lower())
    public_key = certificate.public_key()
    if hash_class is None or not isinstance(public_key, rsa.RSAPublicKey):
        raise Refusal(401, "SIGNATURE_INVALID", "The algorithm does not fit the certificate.")
    names = params["headers"].lower().split()
    missing = [n for n in REQUIRED_SIGNED if n not in names] + [
        n for n in CONDITIONALLY_SIGNED if n in request.headers and n not in names
    ]
    if missing:
        raise Refusal(401, "SIGNATURE_INVALID", f"The signature must cover {', '.join(missing)}.")
    allowed = REQUIRED_SIGNED + CONDITIONALLY_SIGNED
    if len(set(names)) != len(names) or any(
        n not in allowed or n not in request.headers for n in names
    ):
        raise Refusal(401, "SIGNATURE_INVALID", "The signature covers headers it may not.")
    if not digest_matches(request.headers["Digest"], request.body):
        raise Refusal(401, "SIGNATURE_INVALID", "Digest does not match the body.")
    try:
        public_key.verify(
            base64.b64decode(params["signature"], validate=True),
            signed_string(names, request).encode("utf-8", "surrogateescape"),
            padding.PKCS1v15(),
            hash_class(),
        )
    except (BadSignature, ValueError):
        raise Refusal(401, "SIGNATURE_INVALID", "The signature does not verify.") from None
    try:
        sent_at = parsedate_to_datetime(request.headers["Date"])
    except (TypeError, ValueError):
        raise Refusal(400, "FORMAT_ERROR", "Date is not an HTTP date.", path="Date") from None
    if sent_at.tzinfo is None or abs(now - sent_at) > DATE_TOLERANCE:
        raise Refusal(400, "TIMESTAMP_INVALID", "Date is not within five minutes of ours.")


# --- requests -----------------------------------------------------------------------------


def request_id_of(request) -> str:
    value = request.headers.get("X-Request-ID", "")
    try:
        return str(uuid.UUID(value)) if value and len(value) == 36 else ""
    except ValueError:
        return ""


def authenticated(request, code: str) -> tuple[PaymentProvider, str]:
    provider = PaymentProvider.objects.filter(code=code, protocol="berlin_group").first()
    if provider is None:
        raise Refusal(404, "RESOURCE_UNKNOWN", "No such bank.")
    request_id = request_id_of(request)
    if not request_id:
        raise Refusal(400, "FORMAT_ERROR", "X-Request-ID must be a UUID.", path="X-Request-ID")
    verify_tpp(request, provider)
    return provider, request_id


def check_route(service: str, product: str) -> None:
    if service != "payments":
        if service in OTHER_SERVICES:
            raise Refusal(405, "SERVICE_INVALID", f"{service} are not offered.")
        raise Refusal(404, "RESOURCE_UNKNOWN", f"Unknown payment service {service!r}.")
    if product in OTHER_PRODUCTS:
        raise Refusal(403, "PRODUCT_INVALID", f"{product} is not offered.")
    if product not in OFFERED_PRODUCTS:
        raise Refusal(404, "PRODUCT_UNKNOWN", f"Unknown payment product {product!r}.")


def _uri(request, name: str) -> str:
    value = request.headers.get(name, "")
    if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
        raise Refusal(400, "FORMAT_ERROR", f"{name} is not an http(s) URI.", path=name)
    return value


def _iban(value, where: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("iban"), str):
        raise Refusal(400, "FORMAT_ERROR", f"{where}.iban is required.", path=where)
    iban = compact_iban(value["iban"])
    if not iban:
        raise Refusal(400, "FORMAT_ERROR", f"{where}.iban is not a valid IBAN.", path=where)
    return iban


def _text(body: dict, name: str, limit: int, *, required=False) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise Refusal(400, "FORMAT_ERROR", f"{name} must be 1 to {limit} characters.", path=name)
    return value


def read_initiation(request) -> dict:
    """The validated initiation: amount, parties, references, and the TPP's URIs."""
    if request.content_type != "application/json":
        raise Refusal(415, "FORMAT_ERROR", "The body must be application/json.")
    psu_ip = request.headers.get("PSU-IP-Address", "")
    try:
        ipaddress.ip_address(psu_ip)
    except ValueError:
        raise Refusal(
            400, "FORMAT_ERROR", "PSU-IP-Address is required.", path="PSU-IP-Address"
        ) from None
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError):
        raise Refusal(400, "FORMAT_ERROR", "The body is not JSON.") from None
    if not isinstance(body, dict):
        raise Refusal(400, "FORMAT_ERROR", "The body is not a JSON object.")
    instructed = body.get("instructedAmount")
    if not isinstance(instructed, dict):
        raise Refusal(400, "FORMAT_ERROR", "instructedAmount is required.", path="instructedAmount")
    currency, amount_text = instructed.get("currency"), instructed.get("amount")
    if currency != "EUR":
        # SCT and SCT Inst are euro schemes.
        raise Refusal(
            400, "FORMAT_ERROR", "SEPA payments are in EUR.", path="instructedAmount.currency"
        )
    if not isinstance(amount_text, str) or not _AMOUNT.fullmatch(amount_text):
        raise Refusal(400, "FORMAT_ERROR", "amount is malformed.", path="instructedAmount.amount")
    amount = Decimal(amount_text)
    if amount <= 0 or amount != amount.quantize(Decimal(1).scaleb(-currency_exponent(currency))):
        raise Refusal(400, "FORMAT_ERROR", "amount is not payable.", path="instructedAmount.amount")
    debtor = body.get("debtorAccount")
    return {
        "body": body,
        "amount": amount,
        "currency": currency,
        "creditor_iban": _iban(body.get("creditorAccount"), "creditorAccount"),
        "creditor_name": _text(body, "creditorName", 70, required=True),
        "debtor_iban": _iban(debtor, "debtorAccount") if debtor is not None else "",
        "end_to_end": _text(body, "endToEndIdentification", 35),
        "remittance": _text(body, "remittanceInformationUnstructured", 140),
        "redirect_uri": _uri(request, "TPP-Redirect-URI"),
        "nok_redirect_uri": _uri(request, "TPP-Nok-Redirect-URI"),
        "notification_uri": _uri(request, "TPP-Notification-URI"),
        "corporate_id": request.headers.get("PSU-Corporate-ID", ""),
    }


def _customer(end_to_end: str) -> tuple[str, str]:
    """The bank's customer behind a deposit: the player (see the module docstring)."""
    deposit = Deposit.objects.filter(reference=end_to_end).select_related("player").first()
    if deposit is None:
        return "", ""
    return deposit.player.external_id, deposit.player.full_name


# --- the payment resource -----------------------------------------------------------------


def transaction_status(payment: SandboxPayment, outcome: str | None = None) -> str:
    outcome = outcome or payment.status
    if outcome == core.PAID:
        # SCT Inst is confirmed by the creditor's bank within seconds: settled on its side.
        return "ACCC" if payment.data.get("product") == SCT_INST else "ACSC"
    return {
        core.PENDING: "RCVD",
        core.PROCESSING: "ACSP",
        core.DECLINED_SOFT: "RJCT",
        core.DECLINED_HARD: "RJCT",
        core.EXPIRED: "RJCT",
        core.CANCELLED: "CANC",
    }.get(outcome, "PDNG")


def tpp_messages(outcome: str) -> list[dict]:
    if outcome not in REJECTIONS:
        return []
    code, text = REJECTIONS[outcome]
    return [{"category": "ERROR", "code": code, "text": text}]


def compact_iban(text: str) -> str:
    """The IBAN if its structure and check digits are right, else "". Like a bank's own
    check, and no stricter: national account-number checksums are the account bank's
    business."""
    try:
        return IBAN(text).compact
    except SchwiftyException:
        return ""


def debtor_iban(payment: SandboxPayment) -> str:
    typed = str(payment.data.get("payer") or "")
    if typed:
        return compact_iban(typed) or core.sandbox_iban(typed)
    if payment.data.get("debtor_iban"):
        return payment.data["debtor_iban"]
    return core.sandbox_iban(payment.data.get("customer") or payment.sandbox_id)


def resource_path(payment: SandboxPayment) -> str:
    return f"v1/payments/{payment.data['product']}/{payment.sandbox_id}"


def find_payment(code: str, service: str, product: str, payment_id: str) -> SandboxPayment:
    check_route(service, product)
    payment = SandboxPayment.objects.filter(provider_code=code, sandbox_id=payment_id).first()
    if payment is None or payment.data.get("product") != product:
        raise Refusal(404, "RESOURCE_UNKNOWN", "No such payment.")
    return payment


def start(provider: PaymentProvider, initiation: dict, request_id: str) -> SandboxPayment:
    options = provider.options or {}
    exempt = bool(
        initiation["debtor_iban"]
        and initiation["debtor_iban"] == options.get("creditor_iban")
        and options.get("corporate_id")
        and initiation["corporate_id"] == options.get("corporate_id")
    )
    customer, customer_name = ("", "") if exempt else _customer(initiation["end_to_end"])
    payment, created = core.create(
        provider_code=provider.code,
        kind=SandboxPayment.Kind.PAYOUT if exempt else SandboxPayment.Kind.PAYMENT,
        prefix="pis",
        # A real bank has no idempotency here: every initiation is a new payment. The end-to-
        # end id makes a repeated one the same object in the sandbox's table, which is kinder
        # than a real bank; our connector never repeats an initiation.
        merchant_reference=initiation["end_to_end"] or request_id,
        amount=initiation["amount"],
        currency=initiation["currency"],
        notify_url=initiation["notification_uri"],
        return_url=initiation["redirect_uri"],
        data={
            "product": initiation["product"],
            "initiation": initiation["body"],
            "received": initiation["received"],
            "debtor_iban": initiation["debtor_iban"],
            "nok_redirect_uri": initiation["nok_redirect_uri"],
            "customer": customer,
            "debtor_name": customer_name,
        },
    )
    if not created:
        return payment
    if payment.kind == SandboxPayment.Kind.PAYMENT and payment.scenario == core.TIMEOUT:
        # The answer (with the consent link) never reaches the TPP: the PSU cannot authorise,
        # so the payment stays received until the bank's SCA window closes.
        pass
    else:
        outcome = core.outcome_for_scenario(payment)
        if outcome is None and payment.kind == SandboxPayment.Kind.PAYOUT:
            outcome = core.PAID
        if outcome is not None:
            core.settle(payment, outcome)
    core.stall_if_timeout(payment)
    return payment


# --- views --------------------------------------------------------------------------------


@csrf_exempt
def initiate(request, code, service, product):
    request_id = request_id_of(request)
    if request.method != "POST":
        return error(
            405, "SERVICE_INVALID", "Payments are initiated by POST.", request_id=request_id
        )
    try:
        provider, request_id = authenticated(request, code)
        check_route(service, product)
        initiation = read_initiation(request)
    except Refusal as refusal:
        return refusal.response(request_id)
    initiation["product"] = product
    initiation["received"] = {
        name: request.headers[name] for name in RECORDED_HEADERS if name in request.headers
    }
    payment = start(provider, initiation, request_id)
    base = core.base_url(request, "berlin_group", code)
    self_url = base + resource_path(payment)
    answer = core.answer_outcome(payment)
    body = {
        "transactionStatus": transaction_status(payment, answer),
        "paymentId": payment.sandbox_id,
        "_links": {"self": {"href": self_url}, "status": {"href": self_url + "/status"}},
    }
    response_headers = {"X-Request-ID": request_id, "Location": self_url}
    if payment.kind == SandboxPayment.Kind.PAYMENT and payment.status == core.PENDING:
        body["_links"]["scaRedirect"] = {"href": f"{base}consent/{payment.sandbox_id}"}
        response_headers["ASPSP-SCA-Approach"] = "REDIRECT"
    if messages := tpp_messages(answer):
        body["tppMessages"] = messages
    if payment.notify_url:
        response_headers["ASPSP-Notification-Support"] = "true"
        response_headers["ASPSP-Notification-Content"] = "status=LAST"
    response = JsonResponse(body, status=201)
    for name, value in response_headers.items():
        response[name] = value
    return response


@csrf_exempt
def payment_resource(request, code, service, product, payment_id):
    request_id = request_id_of(request)
    if request.method not in ("GET", "DELETE"):
        return error(405, "SERVICE_INVALID", "GET or DELETE.", request_id=request_id)
    try:
        _, request_id = authenticated(request, code)
        payment = find_payment(code, service, product, payment_id)
    except Refusal as refusal:
        return refusal.response(request_id)
    if request.method == "DELETE":
        return cancel(payment, request_id)
    body = dict(payment.data.get("initiation") or {})
    if payment.kind == SandboxPayment.Kind.PAYMENT and payment.status != core.PENDING:
        # The account the PSU chose during SCA, and its holder.
        body["debtorAccount"] = {"iban": debtor_iban(payment)}
        if payment.data.get("debtor_name"):
            body["debtorName"] = payment.data["debtor_name"]
    body["transactionStatus"] = transaction_status(payment)
    if messages := tpp_messages(payment.status):
        body["tppMessages"] = messages
    response = JsonResponse(body)
    response["X-Request-ID"] = request_id
    return response


def cancel(payment: SandboxPayment, request_id: str):
    with transaction.atomic():
        locked = SandboxPayment.objects.select_for_update().get(pk=payment.pk)
        if locked.status != core.PENDING:
            return error(
                405,
                "CANCELLATION_INVALID",
                "The payment is executed or final and can no longer be cancelled.",
                request_id=request_id,
            )
        core.settle(locked, core.CANCELLED)
    response = HttpResponse(status=204)
    response["X-Request-ID"] = request_id
    return response


@csrf_exempt
def payment_status(request, code, service, product, payment_id):
    request_id = request_id_of(request)
    if request.method != "GET":
        return error(405, "SERVICE_INVALID", "GET only.", request_id=request_id)
    try:
        _, request_id = authenticated(request, code)
        payment = find_payment(code, service, product, payment_id)
    except Refusal as refusal:
        return refusal.response(request_id)
    body = {"transactionStatus": transaction_status(payment)}
    if messages := tpp_messages(payment.status):
        body["tppMessages"] = messages
    response = JsonResponse(body)
    response["X-Request-ID"] = request_id
    return response


@csrf_exempt
@require_http_methods(["GET", "POST"])
def consent(request, code, payment_id):
    payment = get_object_or_404(
        SandboxPayment, provider_code=code, sandbox_id=payment_id, kind=SandboxPayment.Kind.PAYMENT
    )
    if request.method == "POST":
        action = request.POST.get("action")
        if action not in ("approve", "deny"):
            return HttpResponseBadRequest("action is approve or deny")
        outcome = core.PAID if action == "approve" else core.CANCELLED
        with transaction.atomic():
            # Locked: the TPP's DELETE and the PSU's answer may cross.
            locked = SandboxPayment.objects.select_for_update().get(pk=payment.pk)
            answer = core.finish_page(locked, outcome, request)
        nok = locked.data.get("nok_redirect_uri")
        if outcome == core.CANCELLED and nok:
            return HttpResponseRedirect(nok)
        return answer
    return core.hosted_page(
        request,
        payment,
        title="Sandbox Bank: authorise this payment",
        description=(
            f"Pay {payment.data.get('initiation', {}).get('creditorName', '')} from your "
            "account. Approving stands for your login and strong customer authentication."
        ),
        buttons=[("approve", "Approve"), ("deny", "Deny")],
    )


urlpatterns = [
    path("v1/<str:service>/<str:product>", initiate),
    path("v1/<str:service>/<str:product>/<str:payment_id>", payment_resource),
    path("v1/<str:service>/<str:product>/<str:payment_id>/status", payment_status),
    path("consent/<str:payment_id>", consent),
]


# --- provisioning and notifications -------------------------------------------------------


def credentials() -> dict:
    """A QSealC-like certificate and RSA key for this installation's TPP, the key encrypted
    with the api_key as passphrase (so the options never hold a usable key on their own), the
    TPP's eIDAS organisation identifier as merchant_id, and the operator's collection account.
    No webhook secret: Berlin Group notifications are unsigned."""
    organisation = f"PSDDE-BAFIN-{secrets.randbelow(10**6):06d}"
    passphrase = secrets.token_urlsafe(32)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sandbox Casino Ltd"),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, "Sandbox Casino TPP seal"),
        ]
    )
    now = timezone.now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=730))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return {
        "api_key": passphrase,
        "webhook_secret": "",
        "merchant_id": organisation,
        "options": {
            "tpp_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
            "tpp_signing_key": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(passphrase.encode()),
            ).decode(),
            "creditor_iban": core.sandbox_iban(f"operator:{organisation}"),
            "creditor_name": "Sandbox Casino Ltd",
            "corporate_id": f"CORP-{secrets.token_hex(4).upper()}",
            "deposit_payment_product": SCT_INST,
            "payout_payment_product": SCT,
        },
    }


def webhooks(payment, outcome, *, provider, signed_right):
    """The status notification for `payment` reaching `outcome`, if the TPP asked for them.
    Unsigned (the standard has no signature here); `signed_right=False` forges one that
    claims the opposite of what happened."""
    if not payment.notify_url or outcome in (core.DISPUTED, core.DISPUTE_WON):
        return []
    status = transaction_status(payment, outcome)
    if not signed_right:
        status = "RJCT" if status in ("ACSC", "ACCC") else "ACCC"
    resource = provider.api_base_url.rstrip("/") + "/" + resource_path(payment)
    body = {
        "paymentId": payment.sandbox_id,
        "transactionStatus": status,
        "_links": {"self": {"href": resource}, "status": {"href": resource + "/status"}},
    }
    headers = {"Content-Type": "application/json", "X-Request-ID": str(uuid.uuid4())}
    return [(json.dumps(body).encode(), headers)]
