"""Celery tasks: thin, idempotent, acks_late. Each takes ids and calls one service."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from . import notifications, services


@shared_task(acks_late=True)
def process_webhook(event_id: int) -> str:
    try:
        event = services.process_webhook(event_id=event_id)
    except Exception as exc:
        # Leave the row unprocessed with the error on it; the sweeper retries it.
        services.record_webhook_failure(event_id=event_id, error=repr(exc))
        raise
    return event.outcome


@shared_task(acks_late=True)
def sweep_webhooks() -> int:
    """Re-enqueue webhooks stored but not processed (lost enqueue, dead worker)."""
    ids = services.unprocessed_webhook_ids(
        older_than=timedelta(seconds=settings.PAYMENTS_WEBHOOK_SWEEP_AFTER_SECONDS)
    )
    for event_id in ids:
        process_webhook.delay(event_id)
    return len(ids)


@shared_task(acks_late=True)
def start_payout(withdrawal_id: int) -> str:
    return services.start_payout(withdrawal_id=withdrawal_id).status


@shared_task(acks_late=True)
def poll_stuck_payments() -> dict:
    return services.poll_stuck_payments(
        stuck_after=timedelta(seconds=settings.PAYMENTS_STUCK_AFTER_SECONDS)
    )


@shared_task(acks_late=True)
def deliver_notification(notification_id: int) -> str | None:
    notification = notifications.deliver(notification_id=notification_id)
    if notification is None:
        return None
    if notification.status == notification.Status.PENDING and notification.next_attempt_at:
        deliver_notification.apply_async((notification_id,), eta=notification.next_attempt_at)
    return notification.status


@shared_task(acks_late=True)
def retry_due_notifications() -> int:
    """Catches retries whose scheduled task was lost (a broker restart drops ETA tasks)."""
    ids = services.due_notification_ids()
    for notification_id in ids:
        deliver_notification.delay(notification_id)
    return len(ids)


# Celery autodiscovers `payments.tasks` only; the sandbox's webhook sender lives beside it.
from .sandbox import tasks as sandbox_tasks  # noqa: E402, F401
