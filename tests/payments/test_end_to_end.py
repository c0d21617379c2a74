"""API → sandbox provider over HTTP → webhook → Celery worker (real, on Redis) → wallet."""

from decimal import Decimal

import httpx
import pytest

from payments.models import Deposit, WebhookEvent
from tests.payments.factories import cash, key, make_player, player_client, wait_for
from wallets import selectors

pytestmark = pytest.mark.django_db(transaction=True)


def start_deposit(player, amount, method="card", currency="EUR", **extra):
    response = player_client(player).post(
        "/api/v1/deposits",
        {"method": method, "amount": amount, "currency": currency, **extra},
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


def test_card_deposit_with_3ds_credits_the_wallet_through_the_webhook(sandbox):
    player = make_player()
    body = start_deposit(player, "25.00")
    assert body["status"] == "pending"
    assert "/3ds/" in body["redirect_url"]

    page = httpx.get(body["redirect_url"])
    assert "Authenticate" in page.text
    httpx.post(body["redirect_url"], data={"action": "authenticate"})

    deposit = deposit_status(body["reference"], "succeeded")
    assert deposit.amount_received == Decimal("25.00")
    assert cash(player) == Decimal("25.00")
    event = WebhookEvent.objects.get(deposit=deposit)
    assert event.is_signature_valid and event.outcome == "applied"
    assert selectors.ledger_problems() == []


def events_for(deposit, count, timeout=15):
    return wait_for(
        lambda: (
            list(WebhookEvent.objects.filter(payment_reference=deposit.reference).order_by("pk"))
            if WebhookEvent.objects.filter(
                payment_reference=deposit.reference, processed_at__isnull=False
            ).count()
            >= count
            else None
        ),
        timeout=timeout,
        what=f"{count} processed webhooks for {deposit.reference}",
    )


def run_janitor():
    from datetime import timedelta

    from payments import services

    return services.poll_stuck_payments(stuck_after=timedelta(0))


# --- card scenarios ---------------------------------------------------------------------------


def test_card_frictionless_payment_succeeds_in_the_response_and_the_webhook_is_a_no_op(sandbox):
    player = make_player()
    body = start_deposit(player, "20.01")
    assert body["status"] == "succeeded"
    deposit = Deposit.objects.get(reference=body["reference"])
    [event] = events_for(deposit, 1)
    assert event.outcome == "no_change"
    assert cash(player) == Decimal("20.01")


@pytest.mark.parametrize(
    "amount,decline_code,kind",
    [("20.05", "insufficient_funds", "soft"), ("20.06", "stolen_card", "hard")],
)
def test_card_declines_fail_the_deposit_without_money(sandbox, amount, decline_code, kind):
    player = make_player()
    body = start_deposit(player, amount)
    assert (body["status"], body["decline_code"], body["decline_kind"]) == (
        "failed",
        decline_code,
        kind,
    )
    deposit = Deposit.objects.get(reference=body["reference"])
    events_for(deposit, 1)
    assert cash(player) == Decimal(0)


def test_card_timeout_leaves_the_deposit_pending_until_the_janitor_polls(sandbox):
    player = make_player()
    body = start_deposit(player, "20.07")
    assert body["status"] == "pending"
    assert body["redirect_url"] == ""
    assert cash(player) == Decimal(0)

    assert run_janitor()["deposits_polled"] == 1
    deposit = Deposit.objects.get(reference=body["reference"])
    assert deposit.status == "succeeded"
    assert deposit.transitions.last().source == "janitor"
    assert cash(player) == Decimal("20.07")
    assert not WebhookEvent.objects.exists()


def test_card_webhook_delayed_credits_when_it_arrives(sandbox):
    player = make_player()
    body = start_deposit(player, "20.08")
    assert body["status"] == "pending"
    deposit = Deposit.objects.get(reference=body["reference"])
    assert not WebhookEvent.objects.exists()
    [event] = events_for(deposit, 1)
    assert event.outcome == "applied"
    assert cash(player) == Decimal("20.08")


def test_open_banking_webhook_twice_credits_once(sandbox):
    player = make_player()
    body = start_deposit(player, "40.09", method="bank_transfer")
    deposit = Deposit.objects.get(reference=body["reference"])
    first, second = events_for(deposit, 2)
    assert sorted([first.outcome, second.outcome]) == ["applied", "no_change"]
    deposit.refresh_from_db()
    assert deposit.status == "succeeded"
    assert cash(player) == Decimal("40.09")
    assert selectors.ledger_problems() == []


def test_webhooks_out_of_order_never_move_the_deposit_backwards(sandbox):
    player = make_player()
    body = start_deposit(player, "40.10", method="bank_transfer")
    deposit = Deposit.objects.get(reference=body["reference"])
    final, late_pending = events_for(deposit, 2)
    assert "ACSC" in final.event_type and "PDNG" in late_pending.event_type
    assert late_pending.outcome == "no_change"
    deposit.refresh_from_db()
    assert deposit.status == "succeeded"
    assert cash(player) == Decimal("40.10")


def test_bad_signature_webhook_is_refused_401_and_the_janitor_settles_the_deposit(sandbox):
    player = make_player()
    body = start_deposit(player, "40.11", method="bank_transfer")
    deposit = Deposit.objects.get(reference=body["reference"])
    event = wait_for(lambda: WebhookEvent.objects.first(), what="the forged webhook")
    assert (event.is_signature_valid, event.outcome, event.processed_at) == (
        False,
        "rejected",
        None,
    )
    assert "OB-Signature" in event.signature_error
    deposit.refresh_from_db()
    assert cash(player) == Decimal(0)

    run_janitor()
    deposit.refresh_from_db()
    assert deposit.status == "succeeded"
    assert cash(player) == Decimal("40.11")


# --- hosted pages of the other providers ------------------------------------------------------


def test_open_banking_consent_approved_credits_and_denied_cancels(sandbox):
    player = make_player()
    approved = start_deposit(player, "15.00", method="bank_transfer")
    denied = start_deposit(player, "16.00", method="bank_transfer")
    assert "/ob/consent/" in approved["redirect_url"]
    httpx.post(approved["redirect_url"], data={"action": "approve"})
    httpx.post(denied["redirect_url"], data={"action": "deny"})
    deposit_status(approved["reference"], "succeeded")
    deposit_status(denied["reference"], "cancelled")
    assert cash(player) == Decimal("15.00")


def test_open_banking_soft_rejection_fails_with_the_iso_reason(sandbox):
    player = make_player()
    body = start_deposit(player, "15.05", method="bank_transfer")
    deposit = deposit_status(body["reference"], "failed")
    assert (deposit.decline_code, deposit.decline_kind) == ("AM04", "soft")


def test_ewallet_hosted_page_pay_and_cancel(sandbox):
    player = make_player()
    paid = start_deposit(player, "12.00", method="ewallet")
    cancelled = start_deposit(player, "13.00", method="ewallet")
    assert "/app?sid=" in paid["redirect_url"]
    httpx.post(paid["redirect_url"], data={"action": "pay"})
    httpx.post(cancelled["redirect_url"], data={"action": "cancel"})
    deposit_status(paid["reference"], "succeeded")
    deposit_status(cancelled["reference"], "cancelled")
    assert cash(player) == Decimal("12.00")


def test_ewallet_timeout_is_resolved_by_polling_the_query_api(sandbox):
    player = make_player()
    body = start_deposit(player, "12.07", method="ewallet")
    assert body["status"] == "pending"
    run_janitor()
    assert Deposit.objects.get(reference=body["reference"]).status == "succeeded"
    assert cash(player) == Decimal("12.07")


# --- crypto --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action,credited,flagged_late",
    [
        ("exact", "0.00200000", False),
        ("less", "0.00100000", False),
        ("more", "0.00240000", False),
        ("late", "0.00200000", True),
    ],
)
def test_crypto_invoice_payments(sandbox, action, credited, flagged_late):
    player = make_player()
    body = start_deposit(player, "0.00200000", method="btc", currency="BTC")
    assert body["instructions"]["address"]
    page = httpx.get(body["redirect_url"])
    assert "Pay exact" in page.text
    httpx.post(body["redirect_url"], data={"action": action})
    deposit = deposit_status(body["reference"], "succeeded")
    assert deposit.amount_received == Decimal(credited)
    assert deposit.is_paid_late is flagged_late
    assert cash(player, "BTC") == Decimal(credited)
    if flagged_late:
        statuses = list(deposit.transitions.values_list("to_status", flat=True))
        assert statuses[-2:] == ["expired", "succeeded"]


def test_crypto_invoice_left_to_expire_expires_the_deposit(sandbox):
    player = make_player()
    body = start_deposit(player, "0.00300000", method="btc", currency="BTC")
    httpx.post(body["redirect_url"], data={"action": "expire"})
    deposit_status(body["reference"], "expired")
    assert cash(player, "BTC") == Decimal(0)


def test_janitor_expires_an_abandoned_deposit(sandbox):
    player = make_player()
    body = start_deposit(player, "17.00")
    Deposit.objects.filter(reference=body["reference"]).update(
        expires_at=Deposit.objects.get(reference=body["reference"]).created_at
    )
    assert run_janitor()["deposits_expired"] == 1
    assert Deposit.objects.get(reference=body["reference"]).status == "expired"
