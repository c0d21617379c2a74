"""Notifications to the casino, without a worker: event ids and the retry schedule."""

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.utils import timezone

from payments import notifications, services
from payments.models import Notification
from payments.providers.base import ProviderResult
from tests.payments.factories import StaffFactory, make_player
from tests.payments.scripted import install_scripted_provider

pytestmark = pytest.mark.django_db


@pytest.fixture
def refunded_twice(monkeypatch):
    """A deposit with a callback URL, credited, then refunded in two parts: three events."""
    install_scripted_provider(monkeypatch)
    deposit = services.create_deposit(
        player=make_player(),
        method_code="scripted",
        amount="50.00",
        currency="EUR",
        idempotency_key="k-1",
        callback_url="https://casino.example/cb",
    )
    services.apply_deposit_result(
        deposit_id=deposit.pk, result=ProviderResult(status="succeeded"), source="webhook"
    )
    actor = StaffFactory()
    for amount in ("10.00", "10.00"):
        refund = services.refund_deposit(deposit=deposit, amount=amount, actor=actor, reason="r")
        services.apply_refund_result(
            refund_id=refund.pk, result=ProviderResult(status="succeeded"), source="webhook"
        )
    return deposit


def test_two_partial_refunds_are_two_events_with_their_own_ids(refunded_twice):
    sent = list(Notification.objects.filter(deposit=refunded_twice).order_by("pk"))
    assert [n.payload["event"] for n in sent] == [
        "deposit.succeeded",
        "deposit.partially_refunded",
        "deposit.partially_refunded",
    ]
    ids = [n.payload["event_id"] for n in sent]
    assert len(set(ids)) == 3
    assert ids == [str(n.event_id) for n in sent]
    assert [n.payload["refunded_amount"] for n in sent] == ["0.00", "10.00", "20.00"]


def _deliver_failing(notification, monkeypatch):
    def refuse(*args, **kwargs):
        raise httpx.ConnectError("casino down")

    monkeypatch.setattr(httpx, "post", refuse)
    Notification.objects.filter(pk=notification.pk).update(next_attempt_at=timezone.now())
    return notifications.deliver(notification_id=notification.pk)


def test_a_resend_after_giving_up_starts_a_fresh_schedule(refunded_twice, monkeypatch, settings):
    settings.PAYMENTS_NOTIFICATION_BACKOFF_SECONDS = [60, 300]
    notification = Notification.objects.filter(deposit=refunded_twice).first()
    for _ in range(3):
        notification = _deliver_failing(notification, monkeypatch)
    assert (notification.status, notification.attempts) == (Notification.Status.GAVE_UP, 3)

    services.resend_notification(notification=notification, actor=StaffFactory())
    again = _deliver_failing(notification, monkeypatch)
    # Before the fix a re-sent notification had one attempt left; now it retries in 60 s.
    assert (again.status, again.attempts, again.attempts_in_schedule) == (
        Notification.Status.PENDING,
        4,
        1,
    )
    assert (again.next_attempt_at - again.attempt_log.last().attempted_at) >= timedelta(seconds=59)
    assert again.payload["event_id"] == str(again.event_id)
    assert Decimal(again.payload["amount"]) == Decimal("50.00")
