"""Stripe webhooks and wire format, with the official `stripe` SDK (16.1.0) as the oracle in
both directions: events we did not write, signed by the SDK, are accepted through our HTTP
endpoint; every variant of a bad signature is refused with nothing moved; the sandbox's own
deliveries are parsed by `stripe.Webhook.construct_event` into proper Events; and the
connector's requests are exactly the form-encoded calls Stripe documents."""

import json
import time
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qsl

import httpx
import pytest
import stripe
from django.utils import timezone

from payments import services
from payments.models import Deposit, ProviderEventKey, WebhookEvent
from payments.providers import adapter_for
from payments.providers.base import (
    CANCELLED,
    DISPUTE_CHARGEBACK,
    DISPUTE_LOST,
    DISPUTE_NOTIFIED,
    DISPUTE_REVERSED,
    FAILED,
    PENDING,
    SUCCEEDED,
    InvalidSignature,
    MalformedWebhook,
    ProviderTimeout,
    ProviderUnavailable,
)
from payments.providers.stripe import STRIPE_VERSION
from payments.sandbox import core
from payments.sandbox import stripe as stripe_sandbox
from payments.sandbox.models import SandboxPayment
from tests.payments.factories import make_player
from wallets.models import JournalEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def only_stripe(monkeypatch):
    """Only the Stripe sandbox provider: the other protocols are not this file's subject."""
    from payments.services import setup

    rows = [row for row in setup.SANDBOX_PROVIDERS if row[3] == "stripe"]
    monkeypatch.setattr(setup, "SANDBOX_PROVIDERS", rows)


@pytest.fixture
def card_provider(only_stripe):
    [provider] = services.ensure_sandbox_providers(base_url="http://testserver")
    return provider


def make_deposit(provider, amount="10.00", currency="EUR", **fields):
    player = make_player()
    return Deposit.objects.create(
        reference=f"dep_{time.monotonic_ns()}",
        player=player,
        provider=provider,
        method=provider.methods.first(),
        amount=Decimal(amount),
        currency_id=currency,
        idempotency_key=str(time.monotonic_ns()),
        request_hash="x",
        expires_at=timezone.now() + timedelta(minutes=30),
        **fields,
    )


def intent_event(deposit, *, event_type="payment_intent.succeeded", **intent_fields):
    """A Stripe Event as Stripe renders it (fields from the API reference), not by our code."""
    amount = int(deposit.amount.scaleb(2 if deposit.currency_id != "JPY" else 0))
    intent = {
        "id": "pi_3PexampleSDKbuilt00000001",
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": deposit.currency_id.lower(),
        "status": "succeeded",
        "latest_charge": None,
        "last_payment_error": None,
        "metadata": {"reference": deposit.reference},
        "next_action": None,
        **intent_fields,
    }
    return {
        "id": f"evt_{time.monotonic_ns()}",
        "object": "event",
        "api_version": STRIPE_VERSION,
        "created": int(time.time()),
        "data": {"object": intent},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def post_webhook(client, provider, body: bytes, **headers):
    return client.post(
        f"/api/v1/payments/webhooks/{provider.code}",
        data=body,
        content_type="application/json",
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()},
    )


def signed(body: bytes, secret: str, timestamp=None) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp
    )


# --- 1. our endpoint accepts what the SDK signs, and refuses everything else -------------------


def test_an_event_signed_by_the_official_sdk_is_accepted_and_queued(client, card_provider):
    deposit = make_deposit(card_provider)
    body = json.dumps(intent_event(deposit)).encode()
    response = post_webhook(
        client, card_provider, body, stripe_signature=signed(body, card_provider.webhook_secret)
    )
    assert response.status_code == 200, response.content
    event = WebhookEvent.objects.get()
    assert event.is_signature_valid and event.outcome == "pending"


def _now() -> int:
    return int(time.time())


BAD_SIGNATURES = {
    "tampered body": lambda body, secret: (body.replace(b"1000", b"9000"), signed(body, secret)),
    "stale timestamp": lambda body, secret: (body, signed(body, secret, _now() - 301)),
    "wrong key": lambda body, secret: (body, signed(body, "whsec_" + "A" * 32)),
    "unsigned": lambda body, secret: (body, None),
    "empty header": lambda body, secret: (body, ""),
    "non-ascii signature": lambda body, secret: (
        body,
        signed(body, secret)[:-1] + "é",
    ),
    "no timestamp": lambda body, secret: (body, "v1=" + signed(body, secret).split("v1=")[1]),
    "two timestamps": lambda body, secret: (body, f"t={_now()}," + signed(body, secret)),
    "timestamp not a number": lambda body, secret: (
        body,
        "t=abc,v1=" + signed(body, secret).split("v1=")[1],
    ),
    "arabic-indic digits": lambda body, secret: (
        body,
        "t=١٢٣,v1=" + signed(body, secret).split("v1=")[1],
    ),
    "only the v0 scheme": lambda body, secret: (body, signed(body, secret).replace("v1=", "v0=")),
    "no key=value items": lambda body, secret: (body, "garbage"),
    "many items": lambda body, secret: (body, signed(body, secret) + ",v1=x" * 40),
    "signature of another timestamp": lambda body, secret: (
        body,
        f"t={_now() - 1},v1=" + signed(body, secret, _now()).split("v1=")[1],
    ),
}


@pytest.mark.parametrize("variant", BAD_SIGNATURES)
def test_a_badly_signed_event_is_refused_and_moves_nothing(client, card_provider, variant):
    deposit = make_deposit(card_provider)
    body = json.dumps(intent_event(deposit)).encode()
    body, header = BAD_SIGNATURES[variant](body, card_provider.webhook_secret)
    headers = {} if header is None else {"stripe_signature": header}
    response = post_webhook(client, card_provider, body, **headers)
    assert response.status_code in (400, 401), response.content
    deposit.refresh_from_db()
    assert deposit.status == "created"
    assert not JournalEntry.objects.exists()
    assert not ProviderEventKey.objects.exists()
    assert not WebhookEvent.objects.filter(is_signature_valid=True).exists()


def test_a_nul_byte_or_a_foreign_content_type_is_refused_before_any_signature_check(
    client, card_provider
):
    deposit = make_deposit(card_provider)
    body = json.dumps(intent_event(deposit)).encode()
    header = signed(body, card_provider.webhook_secret)
    response = client.post(
        f"/api/v1/payments/webhooks/{card_provider.code}",
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_STRIPE_SIGNATURE=header,
    )
    assert response.status_code == 415
    nul = body[:-1] + b"\x00}"
    response = post_webhook(
        client, card_provider, nul, stripe_signature=signed(nul, card_provider.webhook_secret)
    )
    assert response.status_code == 400
    assert not WebhookEvent.objects.filter(is_signature_valid=True).exists()


def test_verify_webhook_raises_only_invalid_signature_whatever_it_is_given(card_provider):
    adapter = adapter_for(card_provider)
    body = b'{"object": "event"}'
    good = signed(body, card_provider.webhook_secret)
    for body_, headers in [
        (body, {"stripe-signature": good.replace("t=", "t=\udcff")}),
        (b"\xff\xfe", {"stripe-signature": good}),
        (body, {"stripe-signature": "t=1,v1=" + "\x00" * 64}),
        (body, {"stripe-signature": ",,,=,=="}),
        (body, {"stripe-signature": "t=99999999999999999999,v1=ab"}),
        (None, {"stripe-signature": good}),
        (body, None),
    ]:
        with pytest.raises(InvalidSignature):
            adapter.verify_webhook(body=body_, headers=headers)


def test_several_v1_signatures_during_a_secret_roll_are_accepted_if_one_matches(card_provider):
    adapter = adapter_for(card_provider)
    body = b'{"id": "evt_1", "object": "event"}'
    timestamp = _now()
    old = signed(body, "whsec_" + "O" * 32, timestamp).split("v1=")[1]
    new = signed(body, card_provider.webhook_secret, timestamp).split("v1=")[1]
    header = f"t={timestamp},v1={old},v1={new},v0=deadbeef"
    adapter.verify_webhook(body=body, headers={"stripe-signature": header})
    # And the official SDK agrees on the same header.
    assert stripe.WebhookSignature.verify_header(body, header, card_provider.webhook_secret)


# --- 2. the sandbox's deliveries are real Stripe events for the SDK -----------------------------


def sandbox_object(provider, kind=SandboxPayment.Kind.PAYMENT, status=core.PAID, **data):
    prefix = {"payment": "pi", "refund": "re", "payout": "po"}[kind]
    amount = Decimal("10.00")
    return SandboxPayment.objects.create(
        provider_code=provider.code,
        kind=kind,
        sandbox_id=f"{prefix}_{time.monotonic_ns():024x}"[:27],
        merchant_reference=f"ref_{time.monotonic_ns()}",
        amount=amount,
        amount_paid=amount if status == core.PAID else None,
        currency="EUR",
        status=status,
        scenario=core.SUCCESS,
        notify_url="http://testserver/",
        data={"metadata": {"reference": f"ref_{kind}"}, "confirmed": True, **data},
    )


OUTCOMES = {
    SandboxPayment.Kind.PAYMENT: [
        (core.PAID, ["payment_intent.succeeded"]),
        (core.PENDING, ["payment_intent.processing"]),
        (core.PROCESSING, ["payment_intent.processing"]),
        (core.DECLINED_SOFT, ["payment_intent.payment_failed"]),
        (core.DECLINED_HARD, ["payment_intent.payment_failed"]),
        (core.CANCELLED, ["payment_intent.canceled"]),
        (core.EXPIRED, ["payment_intent.canceled"]),
        (core.DISPUTED, ["charge.dispute.created", "charge.dispute.funds_withdrawn"]),
        (core.DISPUTE_WON, ["charge.dispute.funds_reinstated", "charge.dispute.closed"]),
    ],
    SandboxPayment.Kind.REFUND: [
        (core.PAID, ["refund.created", "charge.refunded"]),
        (core.PENDING, ["refund.updated"]),
        (core.DECLINED_SOFT, ["refund.failed"]),
        (core.DECLINED_HARD, ["refund.failed"]),
    ],
    SandboxPayment.Kind.PAYOUT: [
        (core.PAID, ["payout.paid"]),
        (core.PENDING, ["payout.updated"]),
        (core.DECLINED_SOFT, ["payout.failed"]),
        (core.DECLINED_HARD, ["payout.failed"]),
        (core.CANCELLED, ["payout.canceled"]),
    ],
}


@pytest.mark.parametrize(
    "kind,outcome,types",
    [(kind, outcome, types) for kind, cases in OUTCOMES.items() for outcome, types in cases],
)
def test_every_sandbox_delivery_is_a_stripe_event_the_sdk_verifies_and_parses(
    card_provider, kind, outcome, types
):
    intent = sandbox_object(card_provider)
    payment = (
        intent
        if kind == SandboxPayment.Kind.PAYMENT
        else sandbox_object(card_provider, kind, payment_intent=intent.sandbox_id)
    )
    deliveries = stripe_sandbox.webhooks(
        payment, outcome, provider=card_provider, signed_right=True
    )
    assert [json.loads(body)["type"] for body, _ in deliveries] == types
    for body, headers in deliveries:
        event = stripe.Webhook.construct_event(
            body, headers["Stripe-Signature"], card_provider.webhook_secret
        )
        assert isinstance(event, stripe.Event)
        assert event.object == "event" and event.id.startswith("evt_")
        assert event.api_version == STRIPE_VERSION and event.livemode is False
        assert event.data.object.object in (
            "payment_intent",
            "refund",
            "payout",
            "dispute",
            "charge",
        )
        assert headers["Content-Type"].startswith("application/json")
    for body, headers in stripe_sandbox.webhooks(
        payment, outcome, provider=card_provider, signed_right=False
    ):
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(
                body, headers["Stripe-Signature"], card_provider.webhook_secret
            )


def test_a_redelivered_sandbox_event_keeps_its_id_as_stripe_retries_do(card_provider):
    payment = sandbox_object(card_provider)
    [(first, _)] = stripe_sandbox.webhooks(
        payment, core.PAID, provider=card_provider, signed_right=True
    )
    [(again, _)] = stripe_sandbox.webhooks(
        payment, core.PAID, provider=card_provider, signed_right=True
    )
    assert json.loads(first)["id"] == json.loads(again)["id"]


@pytest.fixture
def http(monkeypatch):
    """The connector's requests, answered by `http.reply` (Stripe-shaped JSON)."""

    class Recorder:
        requests: list[httpx.Request] = []
        reply = staticmethod(lambda request: httpx.Response(200, json={}))

    def client(self, base_url=None):
        return httpx.Client(
            base_url=self.provider.api_base_url,
            transport=httpx.MockTransport(
                lambda request: Recorder.requests.append(request) or Recorder.reply(request)
            ),
        )

    monkeypatch.setattr("payments.providers.base.PaymentAdapter._client", client)
    Recorder.requests = []
    return Recorder


def parse(card_provider, body: bytes):
    return adapter_for(card_provider).parse_webhook(body=body, headers={})


@pytest.mark.parametrize(
    "outcome,status,code,kind",
    [
        (core.PAID, SUCCEEDED, "", ""),
        (core.PROCESSING, PENDING, "", ""),
        (core.DECLINED_SOFT, FAILED, "issuer_not_available", "soft"),
        (core.DECLINED_HARD, FAILED, "stolen_card", "hard"),
        (core.CANCELLED, CANCELLED, "", ""),
    ],
)
def test_the_connector_reads_the_sandboxs_payment_events(
    card_provider, http, outcome, status, code, kind
):
    payment = sandbox_object(card_provider, customer="player-9")
    charge = stripe_sandbox.render_charge(payment, core.PAID)
    http.reply = lambda request: httpx.Response(200, json=charge)
    [(body, _)] = stripe_sandbox.webhooks(
        payment, outcome, provider=card_provider, signed_right=True
    )
    [event] = parse(card_provider, body)
    assert (event.subject, event.reference, event.provider_reference) == (
        "deposit",
        "ref_payment",
        payment.sandbox_id,
    )
    assert event.dedup_key == json.loads(body)["id"]
    assert (event.result.status, event.result.decline_code, event.result.decline_kind) == (
        status,
        code,
        kind,
    )
    if status == SUCCEEDED:
        assert event.result.amount_received == Decimal("10.00")
        # The fingerprint comes from the charge, fetched because events never expand.
        [request] = http.requests
        assert request.url.path.endswith(f"/v1/charges/ch_{payment.sandbox_id[3:]}")
        assert event.result.payer_instrument.type == "card"


def test_dispute_events_map_to_chargeback_reversal_loss_and_notice(card_provider, http):
    payment = sandbox_object(card_provider)
    http.reply = lambda request: httpx.Response(
        200, json=stripe_sandbox.render_intent(payment, core.PAID)
    )
    created, withdrawn = stripe_sandbox.webhooks(
        payment, core.DISPUTED, provider=card_provider, signed_right=True
    )
    reinstated, closed = stripe_sandbox.webhooks(
        payment, core.DISPUTE_WON, provider=card_provider, signed_right=True
    )
    actions = []
    for body, _ in (created, withdrawn, reinstated, closed):
        [event] = parse(card_provider, body)
        assert event.subject == "dispute"
        assert event.provider_reference == payment.sandbox_id
        assert event.reference == "ref_payment"  # read from the intent's metadata
        assert event.dispute.dispute_reference == f"du_{payment.sandbox_id[3:]}"
        assert (event.dispute.amount, event.dispute.currency) == (Decimal("10.00"), "EUR")
        assert event.dispute.due_by is not None
        actions.append(event.dispute.action)
    assert actions == [DISPUTE_CHARGEBACK, DISPUTE_CHARGEBACK, DISPUTE_REVERSED, DISPUTE_REVERSED]

    lost = json.loads(closed[0])
    lost["data"]["object"]["status"] = "lost"
    [event] = parse(card_provider, json.dumps(lost).encode())
    assert event.dispute.action == DISPUTE_LOST
    inquiry = json.loads(created[0])
    inquiry["data"]["object"]["status"] = "warning_needs_response"
    [event] = parse(card_provider, json.dumps(inquiry).encode())
    assert event.dispute.action == DISPUTE_NOTIFIED


def test_jpy_is_read_in_whole_yen(card_provider):
    deposit = make_deposit(card_provider, amount="1009", currency="JPY")
    [event] = parse(card_provider, json.dumps(intent_event(deposit)).encode())
    assert event.result.amount_received == Decimal("1009")


def test_the_payer_name_and_card_fingerprint_come_from_an_expanded_charge(card_provider):
    deposit = make_deposit(card_provider)
    charge = {
        "id": "ch_1",
        "object": "charge",
        "billing_details": {"name": " Ada Lovelace "},
        "payment_method_details": {"type": "card", "card": {"fingerprint": "Xt5EWLLDS7FJjR1c"}},
    }
    [event] = parse(card_provider, json.dumps(intent_event(deposit, latest_charge=charge)).encode())
    assert event.result.payer_name == "Ada Lovelace"
    assert event.result.payer_instrument.type == "card"
    other = json.loads(json.dumps(intent_event(deposit, latest_charge=charge)))
    [again] = parse(card_provider, json.dumps(other).encode())
    assert again.result.payer_instrument == event.result.payer_instrument


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"object": "event"}',
        b'{"object": "list", "id": "evt_1", "type": "x", "data": {"object": {}}}',
        b'{"object": "event", "id": "evt_1", "type": "payment_intent.succeeded", "data": {}}',
        b'{"object": "event", "id": "evt_1", "type": "payment_intent.succeeded",'
        b' "data": {"object": {"object": "charge"}}}',
        b'{"object": "event", "id": "evt_1", "type": "payment_intent.succeeded",'
        b' "data": {"object": {"object": "payment_intent", "id": "pi_1", "status": "succeeded",'
        b' "amount_received": "10.00", "currency": "eur"}}}',
        b'{"object": "event", "id": "evt_1", "type": "charge.dispute.created",'
        b' "data": {"object": {"object": "dispute", "id": "du_1", "amount": 1000,'
        b' "currency": "xxx"}}}',
        b"not json",
    ],
)
def test_an_unreadable_event_is_malformed_never_a_crash(card_provider, body):
    with pytest.raises(MalformedWebhook):
        parse(card_provider, body)


def test_events_we_do_not_act_on_are_acknowledged_with_nothing_to_apply(card_provider):
    for event_type, obj in [
        ("customer.created", {"object": "customer", "id": "cus_1"}),
        ("charge.refunded", {"object": "charge", "id": "ch_1"}),
    ]:
        body = json.dumps(
            {"id": "evt_1", "object": "event", "type": event_type, "data": {"object": obj}}
        ).encode()
        assert parse(card_provider, body) == []


# --- 4. the requests are what Stripe documents ----------------------------------------------


def test_the_payment_intent_request_is_form_encoded_with_brackets_key_version_and_idempotency(
    card_provider, http
):
    deposit = make_deposit(card_provider, amount="10.00")
    http.reply = lambda request: httpx.Response(
        200,
        json={
            "id": "pi_1",
            "object": "payment_intent",
            "status": "requires_action",
            "currency": "eur",
            "metadata": {"reference": deposit.reference},
            "next_action": {
                "type": "redirect_to_url",
                "redirect_to_url": {"url": "https://hooks.stripe.test/3ds", "return_url": "x"},
            },
        },
    )
    result = adapter_for(card_provider).start_payment(
        deposit=deposit, notify_url="https://us/wh", return_url="https://casino/back"
    )
    [request] = http.requests
    assert (request.method, request.url.path) == (
        "POST",
        "/api/v1/sandbox/stripe/sandbox-card/v1/payment_intents",
    )
    assert request.headers["Authorization"] == f"Bearer {card_provider.api_key}"
    assert request.headers["Stripe-Version"] == STRIPE_VERSION
    assert request.headers["Idempotency-Key"] == deposit.reference
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qsl(request.content.decode()) == [
        ("amount", "1000"),
        ("currency", "eur"),
        ("automatic_payment_methods[enabled]", "true"),
        ("metadata[reference]", deposit.reference),
        ("metadata[customer]", deposit.player.external_id),
        ("expand[0]", "latest_charge"),
        ("payment_method", "pm_card_threeDSecure2Required"),
        ("confirm", "true"),
        ("return_url", "https://casino/back"),
    ]
    assert (result.status, result.provider_reference, result.redirect_url) == (
        PENDING,
        "pi_1",
        "https://hooks.stripe.test/3ds",
    )


def test_a_402_card_error_fails_the_deposit_with_the_issuers_code_and_advice(card_provider, http):
    deposit = make_deposit(card_provider)
    intent = {
        "id": "pi_2",
        "object": "payment_intent",
        "status": "requires_payment_method",
        "currency": "eur",
        "metadata": {"reference": deposit.reference},
    }
    adapter = adapter_for(card_provider)
    for decline_code, advice, kind in [
        ("insufficient_funds", None, "hard"),
        ("do_not_honor", "try_again_later", "soft"),
        ("try_again_later", None, "soft"),
        ("processing_error", "do_not_try_again", "hard"),
        ("brand_new_code", None, "hard"),
    ]:
        error = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": decline_code,
            "advice_code": advice,
            "payment_intent": {**intent, "last_payment_error": {"decline_code": decline_code}},
        }
        http.reply = lambda request, error=error: httpx.Response(402, json={"error": error})
        result = adapter.start_payment(deposit=deposit, notify_url="", return_url="https://r")
        assert (result.status, result.decline_code, result.decline_kind) == (
            FAILED,
            decline_code,
            kind,
        )


def test_a_wrong_key_or_rate_limit_is_unavailable_and_a_server_error_is_unknown(
    card_provider, http
):
    deposit = make_deposit(card_provider)
    adapter = adapter_for(card_provider)
    for status, raised in [
        (401, ProviderUnavailable),
        (429, ProviderUnavailable),
        (500, ProviderTimeout),
    ]:
        http.reply = lambda request, status=status: httpx.Response(
            status, json={"error": {"type": "invalid_request_error", "message": "no"}}
        )
        with pytest.raises(raised):
            adapter.start_payment(deposit=deposit, notify_url="", return_url="https://r")


def test_an_intent_for_another_reference_or_currency_is_never_credited(card_provider, http):
    deposit = make_deposit(card_provider)
    adapter = adapter_for(card_provider)
    for metadata, currency in [
        ({"reference": "dep_other"}, "eur"),
        ({"reference": deposit.reference}, "usd"),
    ]:
        http.reply = lambda request, m=metadata, c=currency: httpx.Response(
            200,
            json={
                "id": "pi_3",
                "object": "payment_intent",
                "status": "succeeded",
                "amount_received": 1000,
                "currency": c,
                "metadata": m,
            },
        )
        result = adapter.start_payment(deposit=deposit, notify_url="", return_url="https://r")
        assert result.status == PENDING
