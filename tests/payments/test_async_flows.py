"""Payouts, refunds, casino notifications and the sweeper, with the real worker."""

import hmac
import json
import os
import signal
import socket
import threading
import time
from datetime import timedelta
from decimal import Decimal
from hashlib import sha256
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection, transaction

from payments import errors, services
from payments.models import Deposit, Notification, WebhookEvent, Withdrawal
from payments.notifications import callback_secret
from payments.sandbox import core
from payments.sandbox.models import SandboxPayment
from payments.sandbox.protocols import protocol_module
from payments.tasks import process_webhook, sweep_webhooks
from tests.payments.conftest import start_worker, wait_until_ready
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
from wallets import selectors
from wallets.models import JournalEntry

pytestmark = pytest.mark.django_db(transaction=True)


def withdraw(player, instrument_body, amount, currency="EUR", **extra):
    client = player_client(player)
    instrument = client.post("/api/v1/payout-instruments", instrument_body, format="json")
    assert instrument.status_code == 201, instrument.json()
    response = client.post(
        "/api/v1/withdrawals",
        {"instrument": instrument.json()["id"], "amount": amount, "currency": currency, **extra},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 201, response.json()
    return response.json()


IBAN = {"kind": "iban", "identifier": "DE89 3704 0044 0532 0130 00", "holder_name": "Ann Example"}
# A Stripe card id on a connected account: what Stripe pays out to.
CARD = {"kind": "card_token", "identifier": "card_1PayoutDebitCard42"}


def withdrawal_status(reference, status, timeout=15):
    return wait_for(
        lambda: Withdrawal.objects.filter(reference=reference, status=status).first(),
        timeout=timeout,
        what=f"withdrawal {reference} to be {status}",
    )


def test_small_withdrawal_is_paid_out_by_the_worker_and_settles_the_hold(sandbox):
    without_minimal_play_rule()
    player = make_player()
    fund(player, "100.00")
    body = withdraw(player, IBAN, "40.00")
    assert body["status"] == "approved"
    withdrawal = withdrawal_status(body["reference"], "paid")
    # Paid by the bank (Berlin Group), from the operator's account to the player's IBAN.
    assert withdrawal.provider.protocol == "berlin_group"
    assert SandboxPayment.objects.filter(
        sandbox_id=withdrawal.provider_reference, kind="payout", status=core.PAID
    ).exists()
    assert (cash(player), held(player)) == (Decimal("60.00"), Decimal(0))
    assert list(withdrawal.transitions.values_list("to_status", flat=True)) == [
        "requested",
        "approved",
        "processing",
        "paid",
    ]
    assert selectors.ledger_problems() == []


def test_a_hard_declined_payout_fails_and_returns_the_money(sandbox):
    without_minimal_play_rule()
    player = make_player()
    fund(player, "100.00")
    body = withdraw(player, CARD, "40.06")
    withdrawal = withdrawal_status(body["reference"], "failed")
    assert (withdrawal.decline_code, withdrawal.decline_kind) == ("unsupported_card", "hard")
    assert (cash(player), held(player)) == (Decimal("100.00"), Decimal(0))


def test_payout_timeout_is_finished_by_the_janitor(sandbox):
    without_minimal_play_rule()
    player = make_player()
    fund(player, "100.00")
    body = withdraw(player, CARD, "40.07")
    # Our call timed out (the withdrawal waits in `processing`); the provider finished it.
    wait_for(
        lambda: (
            SandboxPayment.objects.filter(
                merchant_reference=body["reference"], kind="payout", status=core.PAID
            ).exists()
            and Withdrawal.objects.filter(reference=body["reference"], status="processing").exists()
        ),
        what="the payout to be paid at the provider while our call timed out",
    )
    counts = services.poll_stuck_payments(stuck_after=timedelta(0))
    assert counts["payouts_polled"] == 1
    assert Withdrawal.objects.get(reference=body["reference"]).status == "paid"
    assert (cash(player), held(player)) == (Decimal("59.93"), Decimal(0))


def test_approved_withdrawal_whose_payout_task_was_lost_is_sent_by_the_janitor(sandbox):
    without_minimal_play_rule()
    player = make_player()
    fund(player, "100.00")
    instrument = services.add_payout_instrument(player=player, **CARD)
    with transaction.atomic():
        withdrawal = services.request_withdrawal(
            player=player,
            instrument=instrument,
            amount="10.00",
            currency="EUR",
            idempotency_key=key(),
        )
        # Simulate the enqueue being lost: drop the on-commit callbacks of this transaction.
        connection.run_on_commit = []
    # Nothing was queued, so nothing else can move it.
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == "approved"
    assert services.poll_stuck_payments(stuck_after=timedelta(0))["payouts_sent"] == 1
    withdrawal_status(withdrawal.reference, "paid")


def test_card_refund_goes_through_the_provider_and_marks_the_deposit(sandbox):
    from django.contrib.auth import get_user_model

    player = make_player()
    response = player_client(player).post(
        "/api/v1/deposits",
        {"method": "card", "amount": "50.01", "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    deposit = Deposit.objects.get(reference=response.json()["reference"])
    operator = get_user_model().objects.create(username="finance", is_staff=True)
    refund = services.refund_deposit(
        deposit=deposit, amount="20.00", actor=operator, reason="asked"
    )
    assert refund.status == "succeeded"
    deposit.refresh_from_db()
    assert (deposit.status, deposit.refunded_amount) == ("partially_refunded", Decimal("20.00"))
    assert cash(player) == Decimal("30.01")
    with pytest.raises(errors.RefundTooLarge):
        services.refund_deposit(deposit=deposit, amount="30.02", actor=operator, reason="too much")
    services.refund_deposit(deposit=deposit, amount="30.01", actor=operator, reason="rest")
    deposit.refresh_from_db()
    assert deposit.status == "refunded"
    assert cash(player) == Decimal(0)
    with pytest.raises(errors.InvalidTransition):
        services.refund_deposit(deposit=deposit, amount="0.01", actor=operator, reason="more")
    assert selectors.ledger_problems() == []


def test_a_refund_that_timed_out_is_finished_by_the_janitor(sandbox):
    from django.contrib.auth import get_user_model

    player = make_player()
    response = player_client(player).post(
        "/api/v1/deposits",
        {"method": "card", "amount": "50.01", "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    deposit = Deposit.objects.get(reference=response.json()["reference"])
    operator = get_user_model().objects.create(username="finance", is_staff=True)
    refund = services.refund_deposit(deposit=deposit, amount="10.07", actor=operator, reason="x")
    assert refund.status == "pending"
    assert cash(player) == Decimal("39.94")  # held back from play while the refund is open

    assert services.poll_stuck_payments(stuck_after=timedelta(0))["refunds_polled"] == 1
    refund.refresh_from_db()
    deposit.refresh_from_db()
    assert (refund.status, deposit.status) == ("succeeded", "partially_refunded")
    assert cash(player) == Decimal("39.94")
    assert selectors.ledger_problems() == []


# --- the sweeper, a lost enqueue and a killed worker --------------------------------------------


def stored_bank_notification(provider, deposit):
    """The bank settled the payment and its status notification is stored in the inbox
    without its task being queued (a lost enqueue)."""
    payment = SandboxPayment.objects.get(merchant_reference=deposit.reference, kind="payment")
    # Settled at the bank without sending anything: what a lost notification leaves.
    payment.status = core.PAID
    payment.amount_paid = payment.amount
    payment.save()
    [(body, headers)] = protocol_module(provider.protocol).webhooks(
        payment, core.PAID, provider=provider, signed_right=True
    )
    return services.store_webhook(
        provider=provider,
        body=body,
        headers={k.lower(): v for k, v in headers.items()},
        is_signature_valid=True,
    )


def consented_deposit(player, amount="25.00"):
    """Started at the bank but the player has not come back yet: pending."""
    response = player_client(player).post(
        "/api/v1/deposits",
        {"method": "bank_transfer", "amount": amount, "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    return Deposit.objects.get(reference=response.json()["reference"])


def test_a_lost_enqueue_is_picked_up_by_the_sweeper_and_credited_once(sandbox, settings):
    player = make_player()
    deposit = consented_deposit(player)
    event = stored_bank_notification(sandbox["berlin_group"], deposit)
    assert WebhookEvent.objects.get(pk=event.pk).processed_at is None

    settings.PAYMENTS_WEBHOOK_SWEEP_AFTER_SECONDS = 0
    assert sweep_webhooks() == 1  # runs here; the re-enqueued task runs in the worker
    wait_for(lambda: WebhookEvent.objects.get(pk=event.pk).processed_at, what="the sweep")
    assert sweep_webhooks() == 0
    deposit.refresh_from_db()
    assert deposit.status == "succeeded"
    assert cash(player) == Decimal("25.00")
    assert JournalEntry.objects.filter(kind="deposit").count() == 1


def test_a_worker_killed_mid_task_loses_nothing_and_doubles_nothing(sandbox, live_server, settings):
    player = make_player()
    deposit = consented_deposit(player)
    event = stored_bank_notification(sandbox["berlin_group"], deposit)

    doomed = start_worker(live_server.url, queue="doomed", log_name="payments-doomed-worker.log")
    try:
        wait_until_ready(doomed, f"doomed@{socket.gethostname()}")
        # Hold the deposit's row lock so the doomed worker's task is stuck inside its
        # transaction, mid-task, when we kill it.
        locker_ready, release = threading.Event(), threading.Event()

        def hold_lock():
            with transaction.atomic():
                Deposit.objects.select_for_update().get(pk=deposit.pk)
                locker_ready.set()
                release.wait(30)
            connection.close()

        locker = threading.Thread(target=hold_lock)
        locker.start()
        locker_ready.wait(10)
        process_webhook.apply_async((event.pk,), queue="doomed")
        wait_for(
            lambda: (
                WebhookEvent.objects.filter(pk=event.pk, attempts=0).exists()
                and _task_waiting_on_lock()
            ),
            what="the doomed worker to block on the lock",
        )
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(10)
    finally:
        release.set()
        locker.join(10)
        if doomed.poll() is None:
            doomed.kill()

    # Killed inside its transaction: rolled back, nothing applied.
    assert WebhookEvent.objects.get(pk=event.pk).processed_at is None
    assert cash(player) == Decimal(0)

    settings.PAYMENTS_WEBHOOK_SWEEP_AFTER_SECONDS = 0
    sweep_webhooks()
    wait_for(lambda: WebhookEvent.objects.get(pk=event.pk).processed_at, what="the sweep")
    assert sweep_webhooks() == 0  # processed: nothing left to send again
    assert cash(player) == Decimal("25.00")
    assert JournalEntry.objects.filter(kind="deposit").count() == 1
    assert selectors.ledger_problems() == []


def _task_waiting_on_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


# --- notifications to the casino ---------------------------------------------------------------


@pytest.fixture
def casino():
    """The casino's callback endpoint, on a port of our range."""
    received: list[tuple[dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        status = 200

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(Handler.status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 8402), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield type(
        "Casino", (), {"received": received, "handler": Handler, "url": "http://127.0.0.1:8402/cb"}
    )
    server.shutdown()
    server.server_close()


def _verify(headers: dict, body: bytes, secret: str) -> bool:
    parts = dict(p.split("=", 1) for p in headers["Casino-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


def test_final_state_is_notified_to_the_casino_signed(sandbox, casino):
    player = make_player()
    response = player_client(player).post(
        "/api/v1/deposits",
        {"method": "card", "amount": "20.01", "currency": "EUR", "callback_url": casino.url},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    reference = response.json()["reference"]
    wait_for(lambda: casino.received, what="the notification")
    headers, body = casino.received[0]
    assert _verify(headers, body, callback_secret())
    assert not _verify(headers, body.replace(b"20.01", b"99.01"), callback_secret())
    payload = json.loads(body)
    assert (payload["reference"], payload["status"], payload["amount"]) == (
        reference,
        "succeeded",
        "20.01",
    )
    assert payload["event"] == "deposit.succeeded"
    notification = wait_for(
        lambda: Notification.objects.filter(status="delivered").first(), what="delivered"
    )
    # The casino deduplicates on the event id, in the header and in the signed body.
    assert headers["Casino-Event-Id"] == payload["event_id"] == str(notification.event_id)
    assert notification.attempts == 1
    assert notification.attempt_log.get().status_code == 200


def test_a_failing_casino_endpoint_is_retried_with_backoff_and_can_be_resent(sandbox, casino):
    casino.handler.status = 500
    player = make_player()
    player_client(player).post(
        "/api/v1/deposits",
        {"method": "card", "amount": "20.01", "currency": "EUR", "callback_url": casino.url},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    notification = wait_for(
        lambda: Notification.objects.filter(attempts=1).first(), what="the first attempt"
    )
    assert (notification.status, notification.last_status_code) == ("pending", 500)
    delay = (
        notification.next_attempt_at - notification.attempt_log.get().attempted_at
    ).total_seconds()
    assert 59 <= delay <= 61

    casino.handler.status = 200
    Notification.objects.filter(pk=notification.pk).update(status="gave_up", next_attempt_at=None)
    services.resend_notification(notification=notification)
    wait_for(
        lambda: Notification.objects.filter(pk=notification.pk, status="delivered").exists(),
        what="resend",
    )
    assert Notification.objects.get(pk=notification.pk).attempts == 2
    assert len(casino.received) == 2
    # A re-send is the same event: the same id, so a casino that got the first one ignores it.
    (first_headers, first_body), (again_headers, again_body) = casino.received
    assert first_headers["Casino-Event-Id"] == again_headers["Casino-Event-Id"]
    assert json.loads(first_body)["event_id"] == json.loads(again_body)["event_id"]
