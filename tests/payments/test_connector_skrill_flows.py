"""Skrill end to end: API → sandbox over HTTP → status_url callback → real worker → wallet;
payouts by Send Money, refunds with their callbacks, the janitor's status_trn polling, and
chargebacks in either order."""

import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.contrib.auth import get_user_model

from payments import services
from payments.models import Chargeback, Deposit, Refund, WebhookEvent, Withdrawal
from payments.providers import adapter_for
from payments.providers.base import SUCCEEDED, PayerInstrument
from payments.sandbox.models import SandboxPayment
from tests.payments.factories import (
    cash,
    fund,
    held,
    key,
    make_player,
    player_client,
    wait_for,
    without_minimal_play_rule,
)
from tests.payments.test_connector_skrill import (  # noqa: F401 (autouse fixture)
    only_the_skrill_sandbox,
    post_callback,
    processed,
    start_deposit,
    status_callback,
)
from wallets import selectors

pytestmark = pytest.mark.django_db(transaction=True)


def deposit_becomes(deposit, status, timeout=15):
    return wait_for(
        lambda: Deposit.objects.filter(pk=deposit.pk, status=status).first(),
        timeout=timeout,
        what=f"deposit {deposit.reference} to be {status}",
    )


def processed_count(deposit, count):
    return wait_for(
        lambda: (
            WebhookEvent.objects.filter(
                payment_reference=deposit.reference, processed_at__isnull=False
            ).count()
            >= count
        ),
        what=f"{count} processed callbacks for {deposit.reference}",
    )


def run_janitor():
    return services.poll_stuck_payments(stuck_after=timedelta(0))


def test_a_deposit_paid_on_the_hosted_page_is_credited_by_the_callback(sandbox):
    player = make_player()
    deposit = start_deposit(player, "40.00")
    page = httpx.get(deposit.redirect_url)
    assert "Pay now" in page.text
    httpx.post(deposit.redirect_url, data={"action": "pay", "payer": "Shared.Wallet@Example.com"})

    deposit = deposit_becomes(deposit, "succeeded")
    assert (deposit.amount_received, cash(player)) == (Decimal("40.00"), Decimal("40.00"))
    assert deposit.payer_instrument_fingerprint == (
        PayerInstrument.of("ewallet", "shared.wallet@example.com").fingerprint
    )
    [event] = WebhookEvent.objects.filter(deposit=deposit)
    assert (event.outcome, event.event_type) == ("applied", "status 2 (processed)")
    assert selectors.ledger_problems() == []


def test_a_deposit_cancelled_on_the_hosted_page_is_cancelled(sandbox):
    player = make_player()
    deposit = start_deposit(player, "40.00")
    httpx.post(deposit.redirect_url, data={"action": "cancel"})
    deposit_becomes(deposit, "cancelled")
    assert cash(player) == Decimal(0)


@pytest.mark.parametrize("amount,code,kind", [("40.05", "05", "soft"), ("40.06", "06", "hard")])
def test_declines_fail_the_deposit_with_skrills_reason_code(sandbox, amount, code, kind):
    player = make_player()
    deposit = start_deposit(player, amount)
    deposit = deposit_becomes(deposit, "failed")
    assert (deposit.decline_code, deposit.decline_kind) == (code, kind)
    assert cash(player) == Decimal(0)


def test_a_timed_out_checkout_is_left_for_the_janitor_and_resolved_by_status_trn(sandbox):
    player = make_player()
    deposit = start_deposit(player, "40.07")  # Skrill answers after our timeout; no callback
    assert (deposit.status, deposit.redirect_url) == ("pending", "")
    assert run_janitor()["deposits_polled"] == 1
    deposit.refresh_from_db()
    assert (deposit.status, deposit.transitions.last().source) == ("succeeded", "janitor")
    assert cash(player) == Decimal("40.07")
    assert not WebhookEvent.objects.exists()


def test_an_unpaid_session_is_unknown_to_status_trn_and_expires(sandbox):
    player = make_player()
    deposit = start_deposit(player, "40.00")
    Deposit.objects.filter(pk=deposit.pk).update(expires_at=deposit.created_at)
    assert run_janitor()["deposits_expired"] == 1
    deposit.refresh_from_db()
    assert deposit.status == "expired"


def test_duplicate_and_out_of_order_callbacks_change_nothing(sandbox):
    player = make_player()
    twice = start_deposit(player, "40.09")
    late_pending = start_deposit(player, "41.10")
    processed_count(twice, 2)
    processed_count(late_pending, 2)
    assert cash(player) == Decimal("81.19")
    for deposit in (twice, late_pending):
        deposit.refresh_from_db()
        assert deposit.status == "succeeded"
        outcomes = sorted(
            WebhookEvent.objects.filter(payment_reference=deposit.reference).values_list(
                "outcome", flat=True
            )
        )
        assert outcomes == ["applied", "no_change"]
    assert selectors.ledger_problems() == []


def test_a_callback_signed_with_a_wrong_secret_word_is_refused_and_polling_credits(sandbox):
    player = make_player()
    deposit = start_deposit(player, "40.11")
    wait_for(lambda: WebhookEvent.objects.filter(outcome="rejected").exists(), what="a refusal")
    deposit.refresh_from_db()
    assert deposit.status == "pending" and cash(player) == Decimal(0)
    run_janitor()
    deposit_becomes(deposit, "succeeded")


def test_a_chargeback_takes_the_money_back_once_even_resent_with_another_skrill_id(sandbox):
    player = make_player()
    deposit = start_deposit(player, "40.12")
    wait_for(lambda: Chargeback.objects.filter(deposit=deposit).exists(), what="the chargeback")
    [chargeback] = Chargeback.objects.filter(deposit=deposit)
    assert (chargeback.provider_reference, chargeback.amount) == (
        f"{deposit.reference}:chargeback",
        Decimal("40.12"),
    )
    assert cash(player) == Decimal(0)
    # The same -3 again, only mb_transaction_id (unsigned) changed: same dispute, no money.
    resent = status_callback(
        sandbox["skrill"],
        deposit.reference,
        status="-3",
        mb_amount="40.12",
        amount="40.12",
        mb_transaction_id="8888888888",
    )
    assert post_callback(sandbox["skrill"], resent).status_code == 200
    assert processed(resent).outcome == "no_change"
    assert Chargeback.objects.filter(deposit=deposit).count() == 1
    assert cash(player) == Decimal(0)
    assert selectors.ledger_problems() == []


def test_a_chargeback_that_overtakes_the_success_is_held_then_applied_once(sandbox):
    player = make_player()
    deposit = start_deposit(player, "40.13")
    processed_count(deposit, 2)
    deposit.refresh_from_db()
    [chargeback] = Chargeback.objects.filter(deposit=deposit)
    assert (deposit.status, deposit.charged_back_amount) == ("succeeded", Decimal("40.13"))
    assert (chargeback.status, chargeback.amount) == ("received", Decimal("40.13"))
    assert cash(player) == Decimal(0)
    assert selectors.ledger_problems() == []


# --- payouts: Send Money -------------------------------------------------------------------


def withdraw(player, amount):
    client = player_client(player)
    instrument = client.post(
        "/api/v1/payout-instruments",
        {"kind": "ewallet", "identifier": "Winner@Example.com"},
        format="json",
    )
    assert instrument.status_code == 201, instrument.json()
    response = client.post(
        "/api/v1/withdrawals",
        {"instrument": instrument.json()["id"], "amount": amount, "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 201, response.json()
    return response.json()["reference"]


def withdrawal_becomes(reference, status):
    return wait_for(
        lambda: Withdrawal.objects.filter(reference=reference, status=status).first(),
        what=f"withdrawal {reference} to be {status}",
    )


def test_a_payout_is_sent_money_to_the_players_skrill_account(sandbox):
    without_minimal_play_rule()
    player = make_player()
    fund(player, "100.00")
    reference = withdraw(player, "40.00")
    withdrawal = withdrawal_becomes(reference, "paid")
    transfer = SandboxPayment.objects.get(kind="payout", merchant_reference=reference)
    assert withdrawal.provider_reference == transfer.data["mb_transaction_id"]
    assert transfer.data["bnf_email"] == "winner@example.com"
    assert (transfer.amount, transfer.currency) == (Decimal("40.00"), "EUR")
    assert (cash(player), held(player)) == (Decimal("60.00"), Decimal(0))
    assert selectors.ledger_problems() == []


def test_a_payout_skrill_refuses_fails_soft_and_returns_the_money(sandbox):
    without_minimal_play_rule()
    player = make_player()
    fund(player, "100.00")
    withdrawal = withdrawal_becomes(withdraw(player, "40.05"), "failed")
    assert (withdrawal.decline_code, withdrawal.decline_kind) == ("BALANCE_NOT_ENOUGH", "soft")
    assert (cash(player), held(player)) == (Decimal("100.00"), Decimal(0))


def test_a_scheduled_or_timed_out_payout_is_finished_by_polling(sandbox):
    without_minimal_play_rule()
    player = make_player()
    fund(player, "100.00")
    reference = withdraw(player, "40.07")
    wait_for(
        lambda: SandboxPayment.objects.filter(
            kind="payout", merchant_reference=reference, status="paid"
        ).exists(),
        what="Skrill to execute the transfer",
    )
    time.sleep(1.2)  # our call gives up after PAYMENTS_PROVIDER_TIMEOUT_SECONDS (1 s in tests)
    assert Withdrawal.objects.get(reference=reference).status == "processing"
    assert run_janitor()["payouts_polled"] == 1
    withdrawal_becomes(reference, "paid")
    assert (cash(player), held(player)) == (Decimal("59.93"), Decimal(0))


# --- refunds ---------------------------------------------------------------------------------


def paid_deposit(player, amount="60.00"):
    deposit = start_deposit(player, amount)
    httpx.post(deposit.redirect_url, data={"action": "pay"})
    return deposit_becomes(deposit, "succeeded")


def test_a_refund_is_prepared_and_executed_at_skrill(sandbox):
    player = make_player()
    deposit = paid_deposit(player)
    operator = get_user_model().objects.create(username="finance", is_staff=True)
    refund = services.refund_deposit(deposit=deposit, amount="20.00", actor=operator, reason="x")
    assert refund.status == "succeeded"
    at_skrill = SandboxPayment.objects.get(kind="refund")
    assert refund.provider_reference == at_skrill.data["mb_transaction_id"]
    assert at_skrill.data["transaction_id"] == deposit.reference
    assert at_skrill.data["merchant_fields"] == {"refund_reference": refund.reference}
    deposit.refresh_from_db()
    assert (deposit.status, deposit.refunded_amount) == ("partially_refunded", Decimal("20.00"))
    assert cash(player) == Decimal("40.00")
    # Skrill's refund_status_url callback for it arrives after, and changes nothing.
    event = wait_for(
        lambda: WebhookEvent.objects.filter(
            event_type__startswith="refund status 2", processed_at__isnull=False
        ).first(),
        what="the refund callback",
    )
    assert (event.outcome, event.payment_reference) == ("no_change", refund.reference)
    assert Refund.objects.get().status == "succeeded" and cash(player) == Decimal("40.00")
    assert selectors.ledger_problems() == []


def test_a_refund_skrill_answers_pending_is_finished_by_its_callback(sandbox):
    player = make_player()
    deposit = paid_deposit(player)
    operator = get_user_model().objects.create(username="finance", is_staff=True)
    refund = services.refund_deposit(deposit=deposit, amount="20.08", actor=operator, reason="x")
    assert refund.status == "pending"
    wait_for(
        lambda: Refund.objects.filter(pk=refund.pk, status="succeeded").exists(),
        what="the refund callback",
    )
    event = WebhookEvent.objects.get(event_type__startswith="refund")
    at_skrill = SandboxPayment.objects.get(kind="refund")
    assert event.outcome == "applied"
    assert (
        Refund.objects.get(pk=refund.pk).provider_reference == at_skrill.data["mb_transaction_id"]
    )
    assert cash(player) == Decimal("39.92")
    # The janitor can ask Skrill about a refund whose Skrill id it knows.
    result = adapter_for(deposit.provider).fetch_refund_status(refund=Refund.objects.get())
    assert result.status == SUCCEEDED
    assert selectors.ledger_problems() == []
