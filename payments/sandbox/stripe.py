"""A simulated Stripe: the v1 API subset our connector uses, answered as Stripe answers it.

Mounted at `/api/v1/sandbox/stripe/<code>/`, which plays the role of `https://api.stripe.com/`:
the official SDK reaches it with `StripeClient(key, base_addresses={"api": <that URL>})`.

- Auth: `Authorization: Bearer sk_…` (or HTTP Basic with the key as user name, which Stripe
  also takes); a wrong key is 401 with Stripe's error shape.
- Requests are form-encoded with bracket notation; unknown parameters are refused
  (`parameter_unknown`) as Stripe refuses them, so a connector sending a field Stripe does not
  have fails here too.
- `Idempotency-Key`: the same key with the same parameters replays the first answer
  (`Idempotent-Replayed: true`); with other parameters it is a 400 `idempotency_error`.
- Objects: PaymentIntents (`pi_`), their charges (`ch_`), refunds (`re_`), payouts (`po_`),
  disputes (`du_`); webhooks are `Event`s signed with `Stripe-Signature`, sent to the endpoint
  an operator would register in the Dashboard (our webhook URL for the provider code).
- 3-D Secure: a confirmed intent in the plain success scenario answers `requires_action` with
  `next_action.redirect_to_url` to this sandbox's hosted page; the page returns to the
  `return_url` with `payment_intent`, `payment_intent_client_secret` and `redirect_status`, as
  Stripe does.
"""

import base64
import hashlib
import hmac
import json
import re
import secrets
import string
import time
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode

from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from payments.models import PaymentProvider
from payments.providers.base import provider_secret, to_minor_units
from wallets.money import currency_exponent

from . import core
from .models import SandboxPayment

Kind = SandboxPayment.Kind
PROTOCOL = "stripe"
_ALNUM = string.ascii_letters + string.digits
# The account's default API version: what objects and events are rendered in when a request
# names none (the version the official SDK 16.1.0 is generated for).
STRIPE_VERSION = "2026-10-28.endive"


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def credentials() -> dict:
    """Test-mode keys in Stripe's formats. `payment_method` is Stripe's test PaymentMethod
    that always asks for 3-D Secure: the connector confirms intents with it, as an operator
    testing against Stripe's own test mode would."""
    return {
        "api_key": f"sk_test_{_random(99)}",
        "webhook_secret": f"whsec_{_random(32)}",
        "merchant_id": f"acct_{_random(16)}",
        "options": {"payment_method": "pm_card_threeDSecure2Required"},
    }


# --- wire format ---------------------------------------------------------------------------


class StripeError(Exception):
    def __init__(self, status: int, message: str, *, type_="invalid_request_error", **fields):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, **fields}}


def _json(request, body: dict, status: int = 200, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(
        json.dumps(body, indent=2), status=status, content_type="application/json"
    )
    response["Request-Id"] = f"req_{_random(14)}"
    response["Stripe-Version"] = request.headers.get("Stripe-Version") or STRIPE_VERSION
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _decode_form(text: str) -> dict:
    """Bracket notation to nested dicts and lists (`a[b]=1`, `expand[]=x`, `expand[0]=x`)."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, max_num_fields=1000)
    except ValueError as exc:
        raise StripeError(400, f"Invalid request: {exc}") from None
    root: dict = {}
    for key, value in pairs:
        match = re.fullmatch(r"([A-Za-z0-9_]+)((?:\[[^\[\]]*\])*)", key)
        if not match:
            raise StripeError(400, f"Invalid parameter name: {key}", code="parameter_unknown")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "":
                part = str(len(node))  # `expand[]`: next position
            if last:
                if isinstance(node.get(part), dict):
                    raise StripeError(400, f"Invalid value for {key}.", param=key)
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise StripeError(400, f"Invalid value for {key}.", param=key)
                node = child
    return _lists(root)


def _lists(node):
    """Dicts keyed 0..n-1 are arrays."""
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        keys = sorted(converted, key=int)
        if [int(k) for k in keys] == list(range(len(keys))):
            return [converted[k] for k in keys]
    return converted


def _params(request) -> dict:
    if request.method == "GET":
        return _decode_form(request.META.get("QUERY_STRING", ""))
    media = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if request.body and media != "application/x-www-form-urlencoded":
        raise StripeError(
            400,
            "Invalid request (check that your POST content type is "
            "application/x-www-form-urlencoded).",
        )
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise StripeError(400, "Invalid request: the body is not UTF-8.") from None
    return _decode_form(text)


def _only(params: dict, allowed: set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise StripeError(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )


def _authenticated(request, code: str):
    header = request.headers.get("Authorization", "")
    presented = ""
    if header.startswith("Bearer "):
        presented = header[7:].strip()
    elif header.startswith("Basic "):
        try:
            presented = base64.b64decode(header[6:]).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            presented = ""
    provider = PaymentProvider.objects.filter(code=code, protocol=PROTOCOL).first()
    if not presented:
        raise StripeError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth "
            "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        )
    if provider is None or not core.api_key_matches(provider, presented):
        masked = presented[:8] + "*" * 4 + presented[-4:] if len(presented) > 12 else "****"
        raise StripeError(401, f"Invalid API Key provided: {masked}", code="api_key_invalid")
    version = request.headers.get("Stripe-Version")
    if version is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?", version):
        raise StripeError(400, f"Invalid Stripe API version: {version}", code="api_version_invalid")
    return provider


def _api(allowed_methods: tuple[str, ...]):
    """Auth, Stripe's error shape for every refusal, and JSON 404 for unknown methods."""

    def wrap(view):
        @csrf_exempt
        def handler(request, code, **kwargs):
            try:
                if request.method not in allowed_methods:
                    raise StripeError(
                        404, f"Unrecognized request URL ({request.method}: {request.path})."
                    )
                provider = _authenticated(request, code)
                return view(request, provider, _params(request), **kwargs)
            except StripeError as refusal:
                return _json(request, refusal.body, refusal.status)

        return handler

    return wrap


def _integer(params: dict, name: str, *, required: bool) -> int | None:
    value = params.get(name)
    if value is None:
        if required:
            raise StripeError(
                400, f"Missing required param: {name}.", code="parameter_missing", param=name
            )
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,12}", value, re.ASCII):
        raise StripeError(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=name
        )
    if int(value) < 1:
        raise StripeError(
            400, "This value must be greater than or equal to 1.", code="amount_too_small"
        )
    return int(value)


def _currency(params: dict) -> str:
    value = params.get("currency")
    if value is None:
        raise StripeError(
            400, "Missing required param: currency.", code="parameter_missing", param="currency"
        )
    if not isinstance(value, str) or not core.known_currency(value.upper()):
        raise StripeError(
            400, f"Invalid currency: {value}.", code="parameter_invalid_string", param="currency"
        )
    return value.upper()


def _metadata(params: dict) -> dict:
    metadata = params.get("metadata", {})
    if metadata == "":
        return {}
    if not isinstance(metadata, dict) or len(metadata) > 50:
        raise StripeError(400, "Invalid metadata.", param="metadata")
    for key, value in metadata.items():
        if not isinstance(value, str) or len(key) > 40 or len(value) > 500:
            raise StripeError(400, f"Invalid metadata[{key}].", param=f"metadata[{key}]")
    return metadata


def _expand(params: dict) -> set[str]:
    expand = params.get("expand", [])
    if isinstance(expand, str):
        expand = [expand]
    if not isinstance(expand, list) or not all(isinstance(e, str) for e in expand):
        raise StripeError(400, "Invalid array", param="expand")
    return set(expand)


def _truthy(value) -> bool:
    return value in ("true", "True", "1")


def _minor(amount: Decimal, currency: str) -> int:
    return to_minor_units(amount, currency)


def _major(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-currency_exponent(currency))


def _suffix(payment: SandboxPayment) -> str:
    return payment.sandbox_id.split("_", 1)[1]


def _digest(*parts) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def _not_found(kind: str, object_id: str, param: str) -> StripeError:
    return StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def _find(code: str, kind: str, object_id: str, *, label: str, param: str) -> SandboxPayment:
    found = SandboxPayment.objects.filter(provider_code=code, kind=kind, sandbox_id=object_id)
    payment = found.first()
    if payment is None:
        raise _not_found(label, object_id, param)
    return payment


def _idempotent(request, code: str, kind: str, params: dict):
    """(key, request digest, stored answer or None) for a POST that creates."""
    key = request.headers.get("Idempotency-Key", "")
    digest = _digest(request.path, json.dumps(params, sort_keys=True))
    if not key:
        return "", digest, None
    if len(key) > 255:
        raise StripeError(
            400, "Idempotency-Key is longer than 255 characters.", type_="idempotency_error"
        )
    earlier = SandboxPayment.objects.filter(
        provider_code=code, kind=kind, data__idempotency_key=key
    ).first()
    if earlier is None:
        return key, digest, None
    if earlier.data.get("request_digest") != digest:
        raise StripeError(
            400,
            "Keys for idempotent requests can only be used with the same parameters they "
            f"were first used with. Try using a key other than '{key}' if you meant to "
            "execute a different request.",
            type_="idempotency_error",
        )
    answer = earlier.data.get("first_answer") or {}
    return key, digest, answer


def _replay(request, answer: dict) -> HttpResponse:
    return _json(request, answer["body"], answer["status"], headers={"Idempotent-Replayed": "true"})


def _remember(payment: SandboxPayment, status: int, body: dict) -> None:
    data = dict(payment.data)
    data["first_answer"] = {"status": status, "body": body}
    SandboxPayment.objects.filter(pk=payment.pk).update(data=data)
    payment.data = data


def _merchant_reference(code: str, kind: str, metadata: dict, fallback: str) -> str:
    """The object's own reference in the sandbox table: ours from metadata when free (Stripe
    would make a second object for the same metadata under another key; we key it apart)."""
    reference = metadata.get("reference", "")[:64]
    if (
        reference
        and not SandboxPayment.objects.filter(
            provider_code=code, kind=kind, merchant_reference=reference
        ).exists()
    ):
        return reference
    return fallback


def _webhook_endpoint(provider) -> str:
    """The endpoint an operator registers in Stripe's Dashboard: ours for this provider."""
    from payments.services.common import webhook_url

    return str(provider.options.get("sandbox_webhook_url") or webhook_url(provider))


def _livemode(provider) -> bool:
    return provider_secret(provider, "api_key").startswith("sk_live_")


# --- objects ------------------------------------------------------------------------------

_SOFT_ERROR = {
    "type": "card_error",
    "code": "card_declined",
    "decline_code": "issuer_not_available",
    "advice_code": "try_again_later",
    "message": "Your card was declined.",
    "doc_url": "https://docs.stripe.com/error-codes/card-declined",
}
_HARD_ERROR = {
    "type": "card_error",
    "code": "card_declined",
    "decline_code": "stolen_card",
    "advice_code": "do_not_try_again",
    "message": "Your card was declined.",
    "doc_url": "https://docs.stripe.com/error-codes/card-declined",
}
_AUTHENTICATION_ERROR = {
    "type": "invalid_request_error",
    "code": "payment_intent_authentication_failure",
    "message": "The provided PaymentMethod has failed authentication. You can provide "
    "payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
    "doc_url": "https://docs.stripe.com/error-codes/payment-intent-authentication-failure",
}
_PAID = (core.PAID, core.DISPUTED, core.DISPUTE_WON)
_DECLINED = (core.DECLINED_SOFT, core.DECLINED_HARD)


def _payment_error(payment: SandboxPayment, outcome: str) -> dict | None:
    if outcome not in _DECLINED:
        return None
    if payment.data.get("authentication_failed"):
        return dict(_AUTHENTICATION_ERROR)
    error = dict(_SOFT_ERROR if outcome == core.DECLINED_SOFT else _HARD_ERROR)
    error["charge"] = f"ch_{_suffix(payment)}"
    return error


def _has_charge(payment: SandboxPayment, outcome: str) -> bool:
    return outcome in _PAID or (
        outcome in _DECLINED and not payment.data.get("authentication_failed")
    )


def _card(payment: SandboxPayment) -> dict:
    """The card the player paid with: typed on the 3-D Secure page, else one per customer."""
    payer = core.payer_of(payment, core.PAID) or payment.sandbox_id
    digits = re.sub(r"[\s-]", "", payer)
    if not (digits.isdigit() and 12 <= len(digits) <= 19):
        digits = "4" + str(int(_digest("card", payer), 16))[:15]
    brand = {"4": "visa", "5": "mastercard", "3": "amex"}.get(digits[0], "unknown")
    return {
        "brand": brand,
        "country": "DE",
        "exp_month": 12,
        "exp_year": 2034,
        "fingerprint": core.digest(f"sandbox card {digits}")[:16],
        "funding": "credit",
        "last4": digits[-4:],
        "network": brand,
        "three_d_secure": None,
    }


def _refunded_minor(payment: SandboxPayment) -> int:
    refunds = SandboxPayment.objects.filter(
        provider_code=payment.provider_code,
        kind=Kind.REFUND,
        data__payment_intent=payment.sandbox_id,
    ).exclude(status__in=[*_DECLINED, core.CANCELLED])
    return sum(_minor(r.amount, r.currency) for r in refunds)


def render_charge(payment: SandboxPayment, outcome: str) -> dict:
    paid = outcome in _PAID
    error = _payment_error(payment, outcome) or {}
    amount = _minor(payment.amount, payment.currency)
    refunded = _refunded_minor(payment) if paid else 0
    return {
        "id": f"ch_{_suffix(payment)}",
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if paid else 0,
        "amount_refunded": refunded,
        "balance_transaction": f"txn_{_suffix(payment)}" if paid else None,
        "billing_details": {
            "address": None,
            "email": None,
            "name": payment.data.get("billing_name"),
            "phone": None,
        },
        "captured": paid,
        "created": int(payment.created_at.timestamp()),
        "currency": payment.currency.lower(),
        "customer": None,
        "description": None,
        "disputed": outcome == core.DISPUTED,
        "failure_code": error.get("code"),
        "failure_message": error.get("message"),
        "livemode": payment.data.get("livemode", False),
        "metadata": payment.data.get("metadata", {}),
        "outcome": {
            "network_status": "approved_by_network" if paid else "declined_by_network",
            "reason": error.get("decline_code"),
            "risk_level": "normal",
            "seller_message": "Payment complete." if paid else "The bank declined the payment.",
            "type": "authorized" if paid else "issuer_declined",
        },
        "paid": paid,
        "payment_intent": payment.sandbox_id,
        "payment_method": payment.data.get("payment_method"),
        "payment_method_details": {"type": "card", "card": _card(payment)},
        "refunded": paid and refunded >= amount,
        "status": "succeeded" if paid else "failed",
    }


def _client_secret(payment: SandboxPayment) -> str:
    return f"{payment.sandbox_id}_secret_{_digest('secret', payment.sandbox_id)[:25]}"


def render_intent(payment: SandboxPayment, outcome: str, *, expand: set[str] = frozenset()):
    data = payment.data
    amount = _minor(payment.amount, payment.currency)
    error = _payment_error(payment, outcome)
    next_action = None
    if outcome in _PAID:
        status = "succeeded"
    elif outcome == core.PROCESSING:
        status = "processing"
    elif outcome in _DECLINED:
        status = "requires_payment_method"
    elif outcome in (core.CANCELLED, core.EXPIRED):
        status = "canceled"
    elif not data.get("confirmed"):
        status = "requires_payment_method"
    else:
        status = "requires_action"
        next_action = {
            "type": "redirect_to_url",
            "redirect_to_url": {
                "url": f"{data.get('base_url', '')}3ds/{payment.sandbox_id}",
                "return_url": payment.return_url or None,
            },
        }
    charge = None
    if _has_charge(payment, outcome):
        charge = (
            render_charge(payment, outcome)
            if "latest_charge" in expand
            else f"ch_{_suffix(payment)}"
        )
    received = 0
    if outcome in _PAID and payment.amount_paid is not None:
        received = _minor(payment.amount_paid, payment.currency)
    return {
        "id": payment.sandbox_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": received,
        "automatic_payment_methods": data.get("automatic_payment_methods"),
        "canceled_at": data.get("canceled_at") if status == "canceled" else None,
        "cancellation_reason": (data.get("cancellation_reason") or "abandoned")
        if status == "canceled"
        else None,
        "capture_method": "automatic_async",
        "client_secret": _client_secret(payment),
        "confirmation_method": "automatic",
        "created": int(payment.created_at.timestamp()),
        "currency": payment.currency.lower(),
        "customer": None,
        "description": data.get("description"),
        "last_payment_error": error,
        "latest_charge": charge,
        "livemode": data.get("livemode", False),
        "metadata": data.get("metadata", {}),
        "next_action": next_action,
        "payment_method": data.get("payment_method") if data.get("confirmed") else None,
        "payment_method_types": ["card"],
        "status": status,
    }


def render_refund(refund: SandboxPayment, outcome: str) -> dict:
    status = {
        core.PAID: "succeeded",
        core.DECLINED_SOFT: "failed",
        core.DECLINED_HARD: "failed",
        core.CANCELLED: "canceled",
    }.get(outcome, "pending")
    failure = {
        core.DECLINED_SOFT: "insufficient_funds",
        core.DECLINED_HARD: "expired_or_canceled_card",
    }.get(outcome)
    intent_id = refund.data.get("payment_intent", "")
    return {
        "id": refund.sandbox_id,
        "object": "refund",
        "amount": _minor(refund.amount, refund.currency),
        "balance_transaction": f"txn_{_suffix(refund)}",
        "charge": "ch_" + intent_id.split("_", 1)[-1],
        "created": int(refund.created_at.timestamp()),
        "currency": refund.currency.lower(),
        "destination_details": {"type": "card", "card": {"type": "refund"}},
        "failure_reason": failure,
        "metadata": refund.data.get("metadata", {}),
        "payment_intent": intent_id,
        "reason": refund.data.get("reason"),
        "receipt_number": None,
        "status": status,
    }


def render_payout(payout: SandboxPayment, outcome: str, *, answer: bool = False) -> dict:
    # Stripe never answers a create with `paid`: money arrives later, `payout.paid` says so.
    status = {
        core.PAID: "pending" if answer else "paid",
        core.DECLINED_SOFT: "failed",
        core.DECLINED_HARD: "failed",
        core.CANCELLED: "canceled",
        core.PROCESSING: "in_transit",
    }.get(outcome, "pending")
    failure = {
        core.DECLINED_SOFT: ("could_not_process", "The bank could not process this payout."),
        core.DECLINED_HARD: (
            "unsupported_card",
            "The bank no longer supports payouts to this card.",
        ),
    }.get(outcome if status == "failed" else "", (None, None))
    destination = payout.data.get("destination") or ""
    return {
        "id": payout.sandbox_id,
        "object": "payout",
        "amount": _minor(payout.amount, payout.currency),
        "arrival_date": int(payout.created_at.timestamp()) + 1800,
        "automatic": False,
        "balance_transaction": f"txn_{_suffix(payout)}",
        "created": int(payout.created_at.timestamp()),
        "currency": payout.currency.lower(),
        "description": payout.data.get("description"),
        "destination": destination or None,
        "failure_balance_transaction": None,
        "failure_code": failure[0],
        "failure_message": failure[1],
        "livemode": payout.data.get("livemode", False),
        "metadata": payout.data.get("metadata", {}),
        "method": payout.data.get("method", "standard"),
        "reconciliation_status": "not_applicable",
        "source_type": "card",
        "statement_descriptor": None,
        "status": status,
        "type": "bank_account" if destination.startswith("ba_") else "card",
    }


def render_dispute(payment: SandboxPayment, status: str) -> dict:
    created = int(payment.created_at.timestamp()) + 60
    return {
        "id": f"du_{_suffix(payment)}",
        "object": "dispute",
        "amount": _minor(payment.amount_paid or payment.amount, payment.currency),
        "balance_transactions": [
            {"id": f"txn_du_{_suffix(payment)}", "object": "balance_transaction"}
        ],
        "charge": f"ch_{_suffix(payment)}",
        "created": created,
        "currency": payment.currency.lower(),
        "evidence_details": {
            "due_by": created + 7 * 24 * 3600,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": payment.data.get("livemode", False),
        "metadata": {},
        "payment_intent": payment.sandbox_id,
        "reason": "fraudulent",
        "status": status,
    }


# --- API views ----------------------------------------------------------------------------

_INTENT_CREATE = {
    "amount",
    "currency",
    "automatic_payment_methods",
    "confirm",
    "return_url",
    "metadata",
    "customer",
    "payment_method",
    "payment_method_types",
    "description",
    "receipt_email",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "capture_method",
    "setup_future_usage",
    "off_session",
    "expand",
}


def _play(payment: SandboxPayment) -> None:
    """Confirmation: the card is charged as the amount's scenario says (the plain success
    scenario asks for 3-D Secure first)."""
    outcome = core.outcome_for_scenario(payment)
    if outcome is not None:
        core.settle(payment, outcome)
    core.stall_if_timeout(payment)


def _intent_answer(request, payment: SandboxPayment, expand: set[str]) -> tuple[int, dict]:
    outcome = core.answer_outcome(payment)
    if payment.scenario == core.CHARGEBACK_FIRST and outcome == core.PAID:
        # The dispute must be able to overtake the success: the answer may not carry it.
        outcome = core.PROCESSING
    intent = render_intent(payment, outcome, expand=expand)
    if outcome in _DECLINED:
        # A decline at confirmation is a 402 card error carrying the intent.
        return 402, {"error": {**_payment_error(payment, outcome), "payment_intent": intent}}
    return 200, intent


def _check_confirmable(params: dict) -> None:
    if not params.get("payment_method"):
        raise StripeError(
            400,
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "You can either update the PaymentIntent with a payment method and then confirm "
            "it again, or confirm it again directly with a payment method or ConfirmationToken.",
            code="payment_intent_unexpected_state",
        )
    automatic = params.get("automatic_payment_methods")
    allows_redirects = not (
        isinstance(automatic, dict) and automatic.get("allow_redirects") == "never"
    )
    if allows_redirects and not params.get("return_url"):
        raise StripeError(
            400,
            "A `return_url` must be specified because this Payment Intent is configured to "
            "automatically accept the payment methods enabled in the Dashboard, some of which "
            "may require a full page redirect to succeed.",
            code="parameter_missing",
            param="return_url",
        )


@_api(("POST",))
def payment_intents(request, provider, params):
    _only(params, _INTENT_CREATE)
    key, digest, answer = _idempotent(request, provider.code, Kind.PAYMENT, params)
    if answer:
        return _replay(request, answer)
    amount = _integer(params, "amount", required=True)
    currency = _currency(params)
    metadata = _metadata(params)
    expand = _expand(params)
    if params.get("customer"):
        raise _not_found("customer", str(params["customer"]), "customer")
    confirm = _truthy(params.get("confirm"))
    if confirm:
        _check_confirmable(params)
    sandbox_id = f"pi_{secrets.token_hex(12)}"
    data = {
        "idempotency_key": key,
        "request_digest": digest,
        "metadata": metadata,
        "customer": metadata.get("customer", ""),
        "payment_method": params.get("payment_method"),
        "automatic_payment_methods": {"enabled": True, "allow_redirects": "always"}
        if isinstance(params.get("automatic_payment_methods"), dict)
        else None,
        "description": params.get("description"),
        "confirmed": confirm,
        "livemode": _livemode(provider),
        "base_url": core.base_url(request, PROTOCOL, provider.code),
    }
    payment, _ = core.create(
        provider_code=provider.code,
        kind=Kind.PAYMENT,
        prefix="pi",
        merchant_reference=_merchant_reference(provider.code, Kind.PAYMENT, metadata, sandbox_id),
        amount=_major(amount, currency),
        currency=currency,
        notify_url=_webhook_endpoint(provider),
        return_url=str(params.get("return_url") or ""),
        data=data,
    )
    if confirm:
        _play(payment)
    status, body = _intent_answer(request, payment, expand)
    _remember(payment, status, body)
    return _json(request, body, status)


@_api(("POST",))
def confirm_intent(request, provider, params, intent_id):
    _only(params, {"payment_method", "return_url", "expand", "off_session"})
    payment = _find(provider.code, Kind.PAYMENT, intent_id, label="payment_intent", param="intent")
    if payment.status != core.PENDING or payment.data.get("confirmed"):
        raise StripeError(
            400,
            "This PaymentIntent's status does not allow it to be confirmed.",
            code="payment_intent_unexpected_state",
        )
    merged = {
        "payment_method": params.get("payment_method") or payment.data.get("payment_method"),
        "return_url": params.get("return_url") or payment.return_url,
        "automatic_payment_methods": payment.data.get("automatic_payment_methods"),
    }
    _check_confirmable(merged)
    payment.data = {**payment.data, "confirmed": True, "payment_method": merged["payment_method"]}
    payment.return_url = merged["return_url"]
    payment.save(update_fields=["data", "return_url"])
    _play(payment)
    status, body = _intent_answer(request, payment, _expand(params))
    return _json(request, body, status)


@_api(("GET",))
def intent_detail(request, provider, params, intent_id):
    _only(params, {"expand", "client_secret"})
    payment = _find(provider.code, Kind.PAYMENT, intent_id, label="payment_intent", param="intent")
    return _json(request, render_intent(payment, payment.status, expand=_expand(params)))


@_api(("POST",))
def cancel_intent(request, provider, params, intent_id):
    _only(params, {"cancellation_reason", "expand"})
    payment = _find(provider.code, Kind.PAYMENT, intent_id, label="payment_intent", param="intent")
    reason = params.get("cancellation_reason", "requested_by_customer")
    if reason not in ("duplicate", "fraudulent", "requested_by_customer", "abandoned"):
        raise StripeError(
            400, f"Invalid cancellation_reason: {reason}", param="cancellation_reason"
        )
    status = render_intent(payment, payment.status)["status"]
    if status in ("succeeded", "canceled", "processing"):
        raise StripeError(
            400,
            f"You cannot cancel this PaymentIntent because it has a status of {status}. Only "
            "a PaymentIntent with one of the following statuses may be canceled: "
            "requires_payment_method, requires_capture, requires_confirmation, requires_action.",
            code="payment_intent_unexpected_state",
        )
    core.settle(payment, core.CANCELLED, cancellation_reason=reason, canceled_at=int(time.time()))
    return _json(request, render_intent(payment, payment.status, expand=_expand(params)))


_SEARCH_CLAUSE = re.compile(
    r"""(?:metadata\[(['"])(?P<key>[^'"]+)\1\]|(?P<field>status|currency|customer))"""
    r""":(['"])(?P<value>(?:\\.|(?!\4).)*)\4""",
)


@_api(("GET",))
def search_intents(request, provider, params):
    _only(params, {"query", "limit", "page", "expand"})
    query = params.get("query")
    if not isinstance(query, str) or not query.strip():
        raise StripeError(
            400, "Missing required param: query.", code="parameter_missing", param="query"
        )
    found = SandboxPayment.objects.filter(provider_code=provider.code, kind=Kind.PAYMENT)
    for clause in re.split(r"\s+AND\s+", query.strip()):
        match = _SEARCH_CLAUSE.fullmatch(clause.strip())
        if not match:
            raise StripeError(
                400, f"Invalid search query: {query}", code="parameter_invalid", param="query"
            )
        value = re.sub(r"\\(.)", r"\1", match.group("value"))
        if match.group("key"):
            found = found.filter(**{f"data__metadata__{match.group('key')}": value})
        elif match.group("field") == "currency":
            found = found.filter(currency=value.upper())
        else:
            candidates = [
                p.pk for p in found if render_intent(p, p.status)[match.group("field")] == value
            ]
            found = found.filter(pk__in=candidates)
    expand = {e.removeprefix("data.") for e in _expand(params)}
    return _json(
        request,
        {
            "object": "search_result",
            "data": [render_intent(p, p.status, expand=expand) for p in found[:100]],
            "has_more": False,
            "next_page": None,
            "url": "/v1/payment_intents/search",
        },
    )


@_api(("GET",))
def charge_detail(request, provider, params, charge_id):
    _only(params, {"expand"})
    payment = SandboxPayment.objects.filter(
        provider_code=provider.code, kind=Kind.PAYMENT, sandbox_id="pi_" + charge_id[3:]
    ).first()
    if (
        payment is None
        or not charge_id.startswith("ch_")
        or not _has_charge(payment, payment.status)
    ):
        raise _not_found("charge", charge_id, "id")
    return _json(request, render_charge(payment, payment.status))


@_api(("GET", "POST"))
def refunds(request, provider, params):
    if request.method == "GET":
        _only(
            params,
            {
                "payment_intent",
                "charge",
                "limit",
                "starting_after",
                "ending_before",
                "created",
                "expand",
            },
        )
        found = SandboxPayment.objects.filter(provider_code=provider.code, kind=Kind.REFUND)
        if params.get("payment_intent"):
            found = found.filter(data__payment_intent=params["payment_intent"])
        return _json(request, _list(found, params, render_refund, "/v1/refunds"))
    _only(params, {"payment_intent", "charge", "amount", "metadata", "reason", "expand"})
    key, digest, answer = _idempotent(request, provider.code, Kind.REFUND, params)
    if answer:
        return _replay(request, answer)
    intent_id = params.get("payment_intent") or (
        "pi_" + str(params["charge"])[3:] if str(params.get("charge", "")).startswith("ch_") else ""
    )
    if not intent_id:
        raise StripeError(
            400,
            "One of the following params should be provided for this request: "
            "payment_intent or charge.",
            code="parameter_missing",
        )
    intent = _find(
        provider.code, Kind.PAYMENT, intent_id, label="payment_intent", param="payment_intent"
    )
    if intent.status not in _PAID:
        raise StripeError(
            400,
            f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
            code="charge_not_refundable",
        )
    captured = _minor(intent.amount_paid or intent.amount, intent.currency)
    left = captured - _refunded_minor(intent)
    if left <= 0:
        raise StripeError(
            400,
            f"Charge ch_{_suffix(intent)} has already been refunded.",
            code="charge_already_refunded",
        )
    amount = _integer(params, "amount", required=False) or left
    if amount > left:
        raise StripeError(
            400,
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
            code="amount_too_large",
            param="amount",
        )
    metadata = _metadata(params)
    sandbox_id = f"re_{secrets.token_hex(12)}"
    refund = core.start(
        code=provider.code,
        kind=Kind.REFUND,
        prefix="re",
        reference=_merchant_reference(provider.code, Kind.REFUND, metadata, sandbox_id),
        amount=_major(amount, intent.currency),
        currency=intent.currency,
        notify_url=intent.notify_url,
        data={
            "idempotency_key": key,
            "request_digest": digest,
            "metadata": metadata,
            "payment_intent": intent.sandbox_id,
            "reason": params.get("reason"),
            "livemode": intent.data.get("livemode", False),
        },
    )
    body = render_refund(refund, core.answer_outcome(refund))
    _remember(refund, 200, body)
    return _json(request, body)


@_api(("GET",))
def refund_detail(request, provider, params, refund_id):
    _only(params, {"expand"})
    refund = _find(provider.code, Kind.REFUND, refund_id, label="refund", param="id")
    return _json(request, render_refund(refund, refund.status))


def _list(queryset, params: dict, render, url: str) -> dict:
    limit = params.get("limit", "10")
    if not isinstance(limit, str) or not limit.isdigit() or not 1 <= int(limit) <= 100:
        raise StripeError(400, "Invalid limit: must be between 1 and 100", param="limit")
    created = params.get("created")
    if isinstance(created, dict) and str(created.get("gte", "")).isdigit():
        from datetime import UTC, datetime

        queryset = queryset.filter(created_at__gte=datetime.fromtimestamp(int(created["gte"]), UTC))
    queryset = queryset.order_by("-created_at", "-pk")
    if after := params.get("starting_after"):
        anchor = queryset.filter(sandbox_id=after).first()
        if anchor is None:
            raise _not_found("object", str(after), "starting_after")
        queryset = queryset.filter(pk__lt=anchor.pk)
    page = list(queryset[: int(limit) + 1])
    return {
        "object": "list",
        "data": [render(item, item.status) for item in page[: int(limit)]],
        "has_more": len(page) > int(limit),
        "url": url,
    }


@_api(("GET", "POST"))
def payouts(request, provider, params):
    if request.method == "GET":
        _only(
            params,
            {
                "limit",
                "starting_after",
                "ending_before",
                "created",
                "arrival_date",
                "destination",
                "status",
                "expand",
            },
        )
        found = SandboxPayment.objects.filter(provider_code=provider.code, kind=Kind.PAYOUT)
        return _json(request, _list(found, params, render_payout, "/v1/payouts"))
    _only(
        params,
        {
            "amount",
            "currency",
            "destination",
            "method",
            "metadata",
            "description",
            "source_type",
            "statement_descriptor",
            "expand",
        },
    )
    key, digest, answer = _idempotent(request, provider.code, Kind.PAYOUT, params)
    if answer:
        return _replay(request, answer)
    amount = _integer(params, "amount", required=True)
    currency = _currency(params)
    method = params.get("method", "standard")
    if method not in ("standard", "instant"):
        raise StripeError(
            400, f"Invalid method: {method}", code="parameter_invalid_string", param="method"
        )
    destination = params.get("destination") or ""
    if destination and not re.fullmatch(r"(card|ba)_[A-Za-z0-9_]+", str(destination)):
        raise _not_found("external account", str(destination), "destination")
    metadata = _metadata(params)
    sandbox_id = f"po_{secrets.token_hex(12)}"
    payout = core.start(
        code=provider.code,
        kind=Kind.PAYOUT,
        prefix="po",
        reference=_merchant_reference(provider.code, Kind.PAYOUT, metadata, sandbox_id),
        amount=_major(amount, currency),
        currency=currency,
        notify_url=_webhook_endpoint(provider),
        data={
            "idempotency_key": key,
            "request_digest": digest,
            "metadata": metadata,
            "destination": destination,
            "method": method,
            "description": params.get("description"),
            "livemode": _livemode(provider),
        },
    )
    body = render_payout(payout, core.answer_outcome(payout), answer=True)
    _remember(payout, 200, body)
    return _json(request, body)


@_api(("GET",))
def payout_detail(request, provider, params, payout_id):
    _only(params, {"expand"})
    payout = _find(provider.code, Kind.PAYOUT, payout_id, label="payout", param="payout")
    return _json(request, render_payout(payout, payout.status))


@csrf_exempt
def unknown(request, code, rest=""):
    return _json(
        request,
        {
            "error": {
                "message": f"Unrecognized request URL ({request.method}: /v1/{rest}).",
                "type": "invalid_request_error",
            }
        },
        404,
    )


# --- 3-D Secure page ----------------------------------------------------------------------


@csrf_exempt
def three_d_secure(request, code, intent_id):
    payment = get_object_or_404(
        SandboxPayment, provider_code=code, kind=Kind.PAYMENT, sandbox_id=intent_id
    )
    if request.method == "POST":
        if payment.status == core.PENDING and payment.data.get("confirmed"):
            authenticated = request.POST.get("action") == "authenticate"
            payer = request.POST.get("payer", "").strip()[:200]
            extra = {"payer": payer} if payer else {}
            if not authenticated:
                extra["authentication_failed"] = True
            core.settle(payment, core.PAID if authenticated else core.DECLINED_HARD, **extra)
        if not payment.return_url:
            return HttpResponseRedirect("/")
        outcome = "succeeded" if payment.status in _PAID else "failed"
        separator = "&" if "?" in payment.return_url else "?"
        query = urlencode(
            {
                "payment_intent": payment.sandbox_id,
                "payment_intent_client_secret": _client_secret(payment),
                "redirect_status": outcome,
            }
        )
        return HttpResponseRedirect(f"{payment.return_url}{separator}{query}")
    return core.hosted_page(
        request,
        payment,
        title="3-D Secure",
        description="Your bank asks you to confirm this card payment.",
        buttons=[("authenticate", "Complete authentication"), ("fail", "Fail authentication")],
    )


urlpatterns = [
    path("v1/payment_intents", payment_intents),
    path("v1/payment_intents/search", search_intents),
    path("v1/payment_intents/<str:intent_id>", intent_detail),
    path("v1/payment_intents/<str:intent_id>/confirm", confirm_intent),
    path("v1/payment_intents/<str:intent_id>/cancel", cancel_intent),
    path("v1/charges/<str:charge_id>", charge_detail),
    path("v1/refunds", refunds),
    path("v1/refunds/<str:refund_id>", refund_detail),
    path("v1/payouts", payouts),
    path("v1/payouts/<str:payout_id>", payout_detail),
    path("3ds/<str:intent_id>", three_d_secure),
    re_path(r"^v1/(?P<rest>.*)$", unknown),
]


# --- webhooks -----------------------------------------------------------------------------


def _event_objects(payment: SandboxPayment, outcome: str) -> list[tuple[str, dict]]:
    if payment.kind == Kind.PAYMENT:
        if outcome == core.DISPUTED:
            dispute = render_dispute(payment, "needs_response")
            return [
                ("charge.dispute.created", dispute),
                ("charge.dispute.funds_withdrawn", dispute),
            ]
        if outcome == core.DISPUTE_WON:
            dispute = render_dispute(payment, "won")
            return [
                ("charge.dispute.funds_reinstated", dispute),
                ("charge.dispute.closed", dispute),
            ]
        if outcome in _PAID:
            return [("payment_intent.succeeded", render_intent(payment, outcome))]
        if outcome in _DECLINED:
            return [("payment_intent.payment_failed", render_intent(payment, outcome))]
        if outcome in (core.CANCELLED, core.EXPIRED):
            return [("payment_intent.canceled", render_intent(payment, outcome))]
        return [("payment_intent.processing", render_intent(payment, core.PROCESSING))]
    if payment.kind == Kind.REFUND:
        refund = render_refund(payment, outcome)
        if outcome == core.PAID:
            intent = SandboxPayment.objects.filter(
                provider_code=payment.provider_code,
                kind=Kind.PAYMENT,
                sandbox_id=payment.data.get("payment_intent"),
            ).first()
            events = [("refund.created", refund)]
            if intent is not None:
                events.append(("charge.refunded", render_charge(intent, intent.status)))
            return events
        if outcome in _DECLINED:
            return [("refund.failed", refund)]
        return [("refund.updated", refund)]
    payout = render_payout(payment, outcome)
    name = {
        core.PAID: "payout.paid",
        core.DECLINED_SOFT: "payout.failed",
        core.DECLINED_HARD: "payout.failed",
        core.CANCELLED: "payout.canceled",
    }.get(outcome, "payout.updated")
    return [(name, payout)]


def _signature(secret: str, body: bytes, timestamp: int) -> str:
    """Stripe's scheme, written here apart from the connector's: HMAC-SHA256 with the whole
    `whsec_…` string as key over `<t>.<body>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def webhooks(payment, outcome, *, provider, signed_right):
    """The events Stripe sends for `payment` reaching `outcome`, each its own delivery.
    Event ids are derived from the object and the event type, so a redelivery (the
    webhook-twice scenario) carries the same id, as Stripe's retries do."""
    secret = provider_secret(provider, "webhook_secret") if signed_right else f"whsec_{_random(32)}"
    version = str(provider.options.get("stripe_version") or STRIPE_VERSION)
    deliveries = []
    for event_type, obj in _event_objects(payment, outcome):
        event = {
            "id": "evt_" + _digest(payment.sandbox_id, event_type, outcome)[:24],
            "object": "event",
            "api_version": version,
            "created": int(time.time()),
            "data": {"object": obj},
            "livemode": bool(payment.data.get("livemode", False)),
            "pending_webhooks": 1,
            "request": {
                "id": None,
                "idempotency_key": payment.data.get("idempotency_key") or None,
            },
            "type": event_type,
        }
        body = json.dumps(event, indent=2).encode()
        deliveries.append(
            (
                body,
                {
                    "Content-Type": "application/json; charset=utf-8",
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                    "Stripe-Signature": _signature(secret, body, int(time.time())),
                },
            )
        )
    return deliveries
