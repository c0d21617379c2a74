"""Notifications to the casino: written in the transaction of the final state, delivered
by `payments.notifications` through Celery."""

import uuid

from django.db import transaction
from django.utils import timezone

from wallets import money

from ..models import Deposit, Notification


def _payload(subject) -> dict:
    currency = subject.currency_id
    body = {
        "type": "deposit" if isinstance(subject, Deposit) else "withdrawal",
        "reference": subject.reference,
        "status": subject.status,
        "player": subject.player.external_id,
        "amount": str(money.quantize_money(subject.amount, currency)),
        "currency": currency,
        "provider": subject.provider.code,
        "provider_reference": subject.provider_reference,
        "decline_code": subject.decline_code,
        "completed_at": subject.completed_at.isoformat() if subject.completed_at else None,
    }
    if isinstance(subject, Deposit):
        body["amount_received"] = (
            str(money.quantize_money(subject.amount_received, currency))
            if subject.amount_received is not None
            else None
        )
        body["refunded_amount"] = str(money.quantize_money(subject.refunded_amount, currency))
        body["is_paid_late"] = subject.is_paid_late
    return body


def _notify(subject, field: str) -> None:
    if not subject.callback_url:
        return
    event_id = uuid.uuid4()
    now = timezone.now()
    notification = Notification.objects.create(
        **{field: subject},
        event_id=event_id,
        url=subject.callback_url,
        payload={
            "event_id": str(event_id),
            "event": f"{field}.{subject.status}",
            "occurred_at": now.isoformat(),
            **_payload(subject),
        },
        next_attempt_at=now,
    )
    from ..tasks import deliver_notification

    transaction.on_commit(lambda: deliver_notification.delay(notification.pk), robust=True)


def notify_deposit(deposit):
    _notify(deposit, "deposit")


def notify_withdrawal(withdrawal):
    _notify(withdrawal, "withdrawal")


def resend_notification(*, notification: Notification, actor=None) -> Notification:
    """Deliver again (an operator's action): a gave-up or delivered notification is queued
    anew with its original payload and event id, on a fresh backoff schedule."""
    from ..tasks import deliver_notification

    with transaction.atomic():
        locked = Notification.objects.select_for_update().get(pk=notification.pk)
        locked.status = Notification.Status.PENDING
        locked.next_attempt_at = timezone.now()
        locked.attempts_in_schedule = 0
        locked.save(update_fields=["status", "next_attempt_at", "attempts_in_schedule"])
        transaction.on_commit(lambda: deliver_notification.delay(locked.pk), robust=True)
    return locked


def due_notification_ids(*, limit: int = 1000) -> list[int]:
    return list(
        Notification.objects.filter(
            status=Notification.Status.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
