"""Signed notifications to the casino's `callback_url`.

Each POST carries `Casino-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` with
PAYMENTS_CALLBACK_SECRET (the casino verifies it and rejects timestamps older than a few
minutes) and `Casino-Event-Id`, the notification's `event_id`, also in the body: the casino
deduplicates on it. A non-2xx answer, a network error or no answer within
PAYMENTS_NOTIFICATION_TIMEOUT_SECONDS is retried after 1 m, 5 m, 30 m, 2 h, 6 h and 24 h
(PAYMENTS_NOTIFICATION_BACKOFF_SECONDS), then the notification is given up; an operator can
re-send it from the admin, which starts the schedule afresh.
"""

import json
import time
from datetime import timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from .models import Notification, NotificationAttempt
from .providers.base import hmac_sha256

SIGNATURE_HEADER = "Casino-Signature"
EVENT_ID_HEADER = "Casino-Event-Id"


def callback_secret() -> str:
    if settings.PAYMENTS_CALLBACK_SECRET:
        return settings.PAYMENTS_CALLBACK_SECRET
    return salted_hmac("payments.callback-secret", "v1").hexdigest()


def sign(body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={hmac_sha256(callback_secret(), f'{timestamp}.'.encode() + body)}"


def deliver(*, notification_id: int) -> Notification | None:
    """One delivery attempt, if the notification is due; returns it when an attempt was made,
    None otherwise. The row is locked (skip_locked) during the attempt so two workers never
    post the same notification at once; a failed attempt sets `next_attempt_at`."""
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update(skip_locked=True)
            .filter(pk=notification_id, status=Notification.Status.PENDING)
            .first()
        )
        if notification is None:
            return None
        if notification.next_attempt_at and notification.next_attempt_at > timezone.now():
            return None
        body = json.dumps(notification.payload, separators=(",", ":"), sort_keys=True).encode()
        started = time.monotonic()
        status_code, error = None, ""
        try:
            response = httpx.post(
                notification.url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(body, int(time.time())),
                    EVENT_ID_HEADER: str(notification.event_id),
                },
                timeout=settings.PAYMENTS_NOTIFICATION_TIMEOUT_SECONDS,
            )
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
        NotificationAttempt.objects.create(
            notification=notification,
            status_code=status_code,
            error=error,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        notification.attempts += 1
        notification.attempts_in_schedule += 1
        notification.last_status_code = status_code
        notification.last_error = error
        now = timezone.now()
        if not error:
            notification.status = Notification.Status.DELIVERED
            notification.delivered_at = now
            notification.next_attempt_at = None
        else:
            backoff = settings.PAYMENTS_NOTIFICATION_BACKOFF_SECONDS
            retry_number = notification.attempts_in_schedule - 1
            if retry_number < len(backoff):
                notification.next_attempt_at = now + timedelta(seconds=backoff[retry_number])
            else:
                notification.status = Notification.Status.GAVE_UP
                notification.next_attempt_at = None
        notification.save()
    return notification
