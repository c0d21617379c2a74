"""Stripe end to end: API → connector → the Stripe sandbox over HTTP → signed Event → our
endpoint → the real Celery worker → wallet. And the official SDK's own client driving the
sandbox, to prove the sandbox speaks Stripe."""

import json
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import stripe

from payments import services
from payments.models import (
    Chargeback,
    Deposit,
    ProviderEventKey,
    Refund,
    WebhookEvent,
    Withdrawal,
)
from payments.providers import adapter_for
from payments.providers.base import CANCELLED
from payments.sandbox.models import SandboxPayment
from tests.payments.factories import (
    StaffFactory,
    cash,
    fund,
    key,
    make_player,
    player_client,
    reviewer,
    wait_for,
    without_minimal_play_rule,
)
from wallets import selectors

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def only_stripe(monkeypatch):
    """Only the Stripe sandbox provider: the other protocols are not this file's subject."""
    from payments.services import setup

    rows = [row for row in setup.SANDBOX_PROVIDERS if row[3] == "stripe"]
    monkeypatch.setattr(setup, "SANDBOX_PROVIDERS", rows)


@pytest.fixture
def sandbox(only_stripe, sandbox):
    return sandbox


@pytest.fixture
def card(sandbox):
    return sandbox["stripe"]


def start_deposit(player, amount, currency="EUR"):
    response = player_client(player).post(
        "/api/v1/deposits",
        {"method": "card", "amount": amount, "currency": currency},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 201, response.json()
    return response.json()


def deposit_status(reference, status, timeout=15):
    return wait_for(
        lambda: Deposit.objects.filter(reference=reference, status=status).first(),
        timeout=timeout,
        what=f"deposit {reference} to be {status}",
    )


def processed_events(reference, count, timeout=15):
    def check():
        events = list(
            WebhookEvent.objects.filter(payment_reference=reference, processed_at__isnull=False)
        )
        return events if len(events) >= count else None

    return wait_for(check, timeout=timeout, what=f"{count} processed events for {reference}")


def intent_of(deposit_reference) -> SandboxPayment:
    return SandboxPayment.objects.get(kind="payment", data__metadata__reference=deposit_reference)


def test_a_deposit_authenticated_on_the_3ds_page_is_credited_from_the_signed_event(card):
    player = make_player()
    body = start_deposit(player, "25.00")
    assert body["status"] == "pending"
    intent = intent_of(body["reference"])
    assert body["redirect_url"].endswith(f"/3ds/{intent.sandbox_id}")
    # What the sandbox received is what Stripe documents.
    assert intent.amount == Decimal("25.00") and intent.currency == "EUR"
    assert intent.data["idempotency_key"] == body["reference"]
    assert intent.data["metadata"] == {
        "reference": body["reference"],
        "customer": player.external_id,
    }
    assert intent.data["payment_method"] == "pm_card_threeDSecure2Required"
    assert intent.data["confirmed"] is True

    assert "Complete authentication" in httpx.get(body["redirect_url"]).text
    back = httpx.post(
        body["redirect_url"], data={"action": "authenticate", "payer": "4242 4242 4242 4242"}
    )
    assert back.status_code == 302
    returned = parse_qs(urlsplit(back.headers["location"]).query)
    assert returned["payment_intent"] == [intent.sandbox_id]
    assert returned["redirect_status"] == ["succeeded"]

    deposit = deposit_status(body["reference"], "succeeded")
    assert deposit.provider_reference == intent.sandbox_id
    assert deposit.amount_received == Decimal("25.00")
    assert cash(player) == Decimal("25.00")
    assert deposit.payer_instrument_type == "card" and deposit.payer_instrument_fingerprint
    [event] = processed_events(body["reference"], 1)
    assert event.event_type == "payment_intent.succeeded" and event.outcome == "applied"
    assert selectors.ledger_problems() == []


def test_two_players_paying_with_the_same_card_share_its_fingerprint(card):
    references = []
    for player in (make_player(), make_player()):
        body = start_deposit(player, "12.00")
        httpx.post(
            body["redirect_url"], data={"action": "authenticate", "payer": "5555555555554444"}
        )
        references.append(body["reference"])
    first, second = (deposit_status(ref, "succeeded") for ref in references)
    assert first.payer_instrument_fingerprint == second.payer_instrument_fingerprint


def test_failed_authentication_fails_the_deposit_with_stripes_code(card):
    player = make_player()
    body = start_deposit(player, "25.00")
    back = httpx.post(body["redirect_url"], data={"action": "fail"})
    assert parse_qs(urlsplit(back.headers["location"]).query)["redirect_status"] == ["failed"]
    deposit = deposit_status(body["reference"], "failed")
    assert deposit.decline_code == "payment_intent_authentication_failure"
    assert deposit.decline_kind == "hard"
    assert cash(player) == Decimal(0)


@pytest.mark.parametrize(
    "amount,code,kind",
    [("20.05", "issuer_not_available", "soft"), ("20.06", "stolen_card", "hard")],
)
def test_declines_answer_402_and_fail_the_deposit_soft_or_hard(card, amount, code, kind):
    player = make_player()
    body = start_deposit(player, amount)
    assert (body["status"], body["decline_code"], body["decline_kind"]) == ("failed", code, kind)
    [event] = processed_events(body["reference"], 1)
    assert event.event_type == "payment_intent.payment_failed" and event.outcome == "no_change"
    assert cash(player) == Decimal(0)


def test_a_timed_out_create_is_found_by_search_and_credited_by_the_janitor(card):
    player = make_player()
    body = start_deposit(player, "20.07")
    assert (body["status"], body["redirect_url"]) == ("pending", "")
    deposit = Deposit.objects.get(reference=body["reference"])
    assert deposit.provider_reference == ""  # the answer never came
    wait_for(
        lambda: SandboxPayment.objects.filter(
            data__metadata__reference=deposit.reference, status="paid"
        ).exists()
    )

    assert services.poll_stuck_payments(stuck_after=timedelta(0))["deposits_polled"] == 1
    deposit.refresh_from_db()
    assert deposit.status == "succeeded"
    assert deposit.provider_reference == intent_of(deposit.reference).sandbox_id
    assert deposit.transitions.last().source == "janitor"
    assert cash(player) == Decimal("20.07")
    assert not WebhookEvent.objects.exists()


def test_a_duplicate_delivery_of_one_event_is_applied_once(card):
    player = make_player()
    body = start_deposit(player, "20.09")
    assert body["status"] == "pending"  # "processing": only the webhook says more
    first, second = processed_events(body["reference"], 2)
    assert sorted([first.outcome, second.outcome]) == ["applied", "no_change"]
    # Stripe's retry carries the same event id: the second delivery found its key taken.
    assert json.loads(first.body)["id"] == json.loads(second.body)["id"]
    assert ProviderEventKey.objects.filter(key=json.loads(first.body)["id"]).count() == 1
    assert cash(player) == Decimal("20.09")


def test_a_late_processing_event_after_the_success_changes_nothing(card):
    player = make_player()
    body = start_deposit(player, "20.10")
    succeeded, late = sorted(processed_events(body["reference"], 2), key=lambda e: e.pk)
    assert succeeded.event_type == "payment_intent.succeeded"
    assert (late.event_type, late.outcome) == ("payment_intent.processing", "no_change")
    assert Deposit.objects.get(reference=body["reference"]).status == "succeeded"
    assert cash(player) == Decimal("20.10")


def test_an_event_signed_with_another_secret_is_refused_and_the_deposit_waits(card):
    player = make_player()
    body = start_deposit(player, "20.11")
    event = wait_for(lambda: WebhookEvent.objects.filter(is_signature_valid=False).first())
    assert event.outcome == "rejected"
    assert Deposit.objects.get(reference=body["reference"]).status == "pending"
    assert cash(player) == Decimal(0)


@pytest.mark.parametrize("amount", ["30.12", "30.13"])
def test_a_dispute_charges_back_once_whether_it_comes_after_or_before_the_success(card, amount):
    player = make_player()
    body = start_deposit(player, amount)
    # Success, dispute created, funds withdrawn: three events, in either order.
    processed_events(body["reference"], 3)
    deposit = wait_for(
        lambda: Deposit.objects.filter(
            reference=body["reference"], charged_back_amount=Decimal(amount)
        ).first()
    )
    assert deposit.status == "succeeded"
    [chargeback] = Chargeback.objects.filter(deposit=deposit)
    assert chargeback.provider_reference == f"du_{deposit.provider_reference[3:]}"
    assert chargeback.amount == Decimal(amount) and chargeback.status == "received"
    assert cash(player) == Decimal(0)
    assert selectors.ledger_problems() == []


def test_a_refund_completes_from_the_refund_event(card):
    player = make_player()
    body = start_deposit(player, "40.01")
    assert body["status"] == "succeeded"
    deposit = Deposit.objects.get(reference=body["reference"])
    refund = services.refund_deposit(
        deposit=deposit, amount=Decimal("15.00"), actor=StaffFactory(), reason="player asked"
    )
    sent = SandboxPayment.objects.get(kind="refund")
    assert sent.data["payment_intent"] == deposit.provider_reference
    assert sent.data["metadata"]["reference"] == refund.reference
    assert sent.amount == Decimal("15.00")
    refund = wait_for(lambda: Refund.objects.filter(pk=refund.pk, status="succeeded").first())
    assert refund.provider_reference == sent.sandbox_id
    deposit.refresh_from_db()
    assert (deposit.status, deposit.refunded_amount) == ("partially_refunded", Decimal("15.00"))
    assert cash(player) == Decimal("25.01")
    assert selectors.ledger_problems() == []


def test_a_payout_to_the_players_card_is_paid_by_the_payout_paid_event(card):
    without_minimal_play_rule()
    player = make_player()
    fund(player, "100.00", provider=card.code)
    instrument = services.add_payout_instrument(
        player=player, kind="card_token", identifier="card_1PlayerDebitCard0001"
    )
    response = player_client(player).post(
        "/api/v1/withdrawals",
        {"instrument": instrument.pk, "amount": "40.00", "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 201, response.json()
    reference = response.json()["reference"]
    withdrawal = Withdrawal.objects.get(reference=reference)
    if withdrawal.status == "in_review":
        staff = [reviewer(), reviewer()]
        for approver in staff[: withdrawal.required_approvals]:
            services.approve_withdrawal(withdrawal=withdrawal, approver=approver)
    withdrawal = wait_for(
        lambda: Withdrawal.objects.filter(reference=reference, status="paid").first(), timeout=20
    )
    payout = SandboxPayment.objects.get(kind="payout")
    assert payout.data["destination"] == "card_1PlayerDebitCard0001"
    assert payout.data["metadata"] == {"reference": reference}
    assert payout.data["idempotency_key"] == reference
    assert withdrawal.provider_reference == payout.sandbox_id
    assert cash(player) == Decimal("60.00")


def test_the_janitor_can_cancel_an_unpaid_intent_so_it_can_no_longer_be_paid(card):
    player = make_player()
    body = start_deposit(player, "25.00")
    deposit = Deposit.objects.get(reference=body["reference"])
    result = adapter_for(card).cancel_payment(deposit=deposit)
    assert result.status == CANCELLED
    # The player comes back from the bank too late: nothing is charged.
    httpx.post(body["redirect_url"], data={"action": "authenticate"})
    assert intent_of(deposit.reference).status == "cancelled"
    [event] = processed_events(deposit.reference, 1)
    assert event.event_type == "payment_intent.canceled"
    deposit.refresh_from_db()
    assert deposit.status == "cancelled" and cash(player) == Decimal(0)
    # An intent Stripe never heard of: nothing to cancel.
    ghost = Deposit.objects.create(
        reference="dep_never_sent",
        player=player,
        provider=card,
        method=deposit.method,
        amount=Decimal(5),
        currency_id="EUR",
        idempotency_key="ghost",
        request_hash="x",
        expires_at=deposit.expires_at,
    )
    assert adapter_for(card).cancel_payment(deposit=ghost) is None
    assert adapter_for(card).fetch_payment_status(deposit=ghost) is None


def test_a_yen_deposit_goes_to_stripe_in_whole_yen(card):
    player = make_player()
    body = start_deposit(player, "1201", currency="JPY")
    assert body["status"] == "succeeded"
    assert cash(player, "JPY") == Decimal("1201")
    intent = httpx.get(
        f"{card.api_base_url}v1/payment_intents/{intent_of(body['reference']).sandbox_id}",
        headers={"Authorization": f"Bearer {card.api_key}"},
    ).json()
    assert (intent["amount"], intent["currency"]) == (1201, "jpy")


# --- the official SDK drives the sandbox ------------------------------------------------------


def sdk(card, api_key=None) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key or card.api_key, base_addresses={"api": card.api_base_url.rstrip("/")}
    )


def test_the_official_sdk_talks_to_the_sandbox_as_to_stripe(card):
    client = sdk(card)
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2500,
            "currency": "eur",
            "automatic_payment_methods": {"enabled": True},
            "payment_method": "pm_card_threeDSecure2Required",
            "confirm": True,
            "return_url": "https://casino.test/back",
            "metadata": {"reference": "sdk-1"},
        },
        options={"idempotency_key": "sdk-1"},
    )
    assert isinstance(intent, stripe.PaymentIntent)
    assert intent.status == "requires_action"
    assert intent.next_action.type == "redirect_to_url"
    assert intent.next_action.redirect_to_url.url.endswith(f"/3ds/{intent.id}")

    again = client.v1.payment_intents.create(
        params={
            "amount": 2500,
            "currency": "eur",
            "automatic_payment_methods": {"enabled": True},
            "payment_method": "pm_card_threeDSecure2Required",
            "confirm": True,
            "return_url": "https://casino.test/back",
            "metadata": {"reference": "sdk-1"},
        },
        options={"idempotency_key": "sdk-1"},
    )
    assert again.id == intent.id
    with pytest.raises(stripe.IdempotencyError):
        client.v1.payment_intents.create(
            params={"amount": 999, "currency": "eur"}, options={"idempotency_key": "sdk-1"}
        )

    found = client.v1.payment_intents.search(params={"query": "metadata['reference']:'sdk-1'"})
    assert [i.id for i in found.data] == [intent.id]
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_action"
    canceled = client.v1.payment_intents.cancel(
        intent.id, params={"cancellation_reason": "abandoned"}
    )
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")

    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(
            params={
                "amount": 1006,
                "currency": "eur",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "return_url": "https://casino.test/back",
            }
        )
    assert declined.value.code == "card_declined"
    assert declined.value.error.decline_code == "stolen_card"
    assert declined.value.error.payment_intent.status == "requires_payment_method"

    paid = client.v1.payment_intents.create(
        params={
            "amount": 5001,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "return_url": "https://casino.test/back",
            "expand": ["latest_charge"],
        }
    )
    assert paid.status == "succeeded" and paid.amount_received == 5001
    assert paid.latest_charge.payment_method_details.card.fingerprint
    refund = client.v1.refunds.create(params={"payment_intent": paid.id, "amount": 1000})
    assert (refund.object, refund.status, refund.amount) == ("refund", "succeeded", 1000)
    assert client.v1.refunds.retrieve(refund.id).payment_intent == paid.id
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"payment_intent": paid.id, "amount": 4002})
    assert too_much.value.code == "amount_too_large"

    payout = client.v1.payouts.create(
        params={"amount": 1500, "currency": "eur", "destination": "card_1Abc", "method": "instant"}
    )
    assert (payout.object, payout.status, payout.method) == ("payout", "pending", "instant")
    assert client.v1.payouts.retrieve(payout.id).status == "paid"

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.payment_intents.create(
            params={"amount": 100, "currency": "eur", "notify_url": "x"}
        )
    assert unknown.value.code == "parameter_unknown"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.retrieve("pi_nope")
    assert missing.value.code == "resource_missing" and missing.value.http_status == 404
    with pytest.raises(stripe.AuthenticationError):
        sdk(card, api_key="sk_test_wrong").v1.payment_intents.retrieve(intent.id)


def test_bad_requests_get_stripes_error_shape_never_a_500(card):
    base = card.api_base_url
    auth = {"Authorization": f"Bearer {card.api_key}"}
    for method, path, kwargs, status in [
        ("POST", "v1/payment_intents", {"content": b"amount=abc&currency=eur"}, 400),
        ("POST", "v1/payment_intents", {"content": b"amount=100&currency=zzz"}, 400),
        ("POST", "v1/payment_intents", {"content": b"amount=100"}, 400),
        ("POST", "v1/payment_intents", {"content": b"amount=100&currency=eur&confirm=true"}, 400),
        ("POST", "v1/payment_intents", {"content": b"a[b]=1&a=2"}, 400),
        ("POST", "v1/payment_intents", {"content": b"\xff\xfe"}, 400),
        ("POST", "v1/payment_intents", {"json": {"amount": 100}}, 400),
        ("GET", "v1/payment_intents/search", {"params": {"query": "drop table"}}, 400),
        ("GET", "v1/payouts", {"params": {"limit": "1000"}}, 400),
        ("POST", "v1/refunds", {"content": b"payment_intent=pi_nope"}, 404),
        ("POST", "v1/payouts", {"content": b"amount=1&currency=eur&destination=tok_x"}, 404),
        ("DELETE", "v1/payment_intents", {}, 404),
        ("GET", "v1/nothing/here", {}, 404),
    ]:
        headers = dict(auth)
        if "content" in kwargs:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        response = httpx.request(method, base + path, headers=headers, **kwargs)
        assert response.status_code == status, (path, kwargs, response.text)
        assert response.json()["error"]["type"] == "invalid_request_error"
    unauthenticated = httpx.get(base + "v1/payouts")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["type"] == "invalid_request_error"
