"""The webhook inbox: store first, verify, then process once in a Celery task."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .. import providers
from ..models import Chargeback, Deposit, PaymentProvider, Refund, WebhookEvent, Withdrawal
from ..providers.base import (
    CHARGEBACK,
    DEPOSIT,
    REFUND,
    WITHDRAWAL,
    InvalidSignature,
    ProviderEvent,
)
from .deposits import advance_deposit
from .refunds import advance_refund, record_chargeback
from .withdrawals import advance_withdrawal


def receive_webhook(*, provider_code: str, body: bytes, headers: dict) -> WebhookEvent:
    """Store the webhook exactly as received, then (after commit) queue its processing.
    A bad signature is stored for the record and never processed."""
    provider = PaymentProvider.objects.get(code=provider_code)
    headers = {k.lower(): v for k, v in headers.items()}
    adapter = providers.adapter_for(provider)
    try:
        adapter.verify_webhook(body=body, headers=headers)
    except InvalidSignature as exc:
        is_valid, error = False, str(exc)
    else:
        is_valid, error = True, ""
    with transaction.atomic():
        event = store_webhook(
            provider=provider,
            body=body,
            headers=headers,
            is_signature_valid=is_valid,
            signature_error=error,
        )
        if is_valid:
            from ..tasks import process_webhook

            transaction.on_commit(lambda: process_webhook.delay(event.pk), robust=True)
    return event


def store_webhook(
    *, provider, body: bytes, headers: dict, is_signature_valid: bool, signature_error: str = ""
) -> WebhookEvent:
    """The inbox row alone, without queueing (the sweeper will find it)."""
    return WebhookEvent.objects.create(
        provider=provider,
        body=body.decode("utf-8", errors="replace"),
        headers=headers,
        is_signature_valid=is_signature_valid,
        signature_error=signature_error[:200],
        outcome=WebhookEvent.Outcome.PENDING
        if is_signature_valid
        else WebhookEvent.Outcome.REJECTED,
    )


def process_webhook(*, event_id: int) -> WebhookEvent:
    """Apply one stored webhook, once. The event row is locked for the whole transaction, so
    two workers given the same event (a redelivery, the sweeper) apply it once; the payment
    moves forward only, so a duplicate or late event changes nothing."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().select_related("provider").get(pk=event_id)
        if event.processed_at is not None or not event.is_signature_valid:
            return event
        event.attempts += 1
        adapter = providers.adapter_for(event.provider)
        try:
            parsed = adapter.parse_webhook(body=event.body.encode(), headers=event.headers)
        except (ValueError, KeyError, TypeError) as exc:
            event.outcome = WebhookEvent.Outcome.ERROR
            event.last_error = f"unparseable: {exc!r}"[:2000]
            event.processed_at = timezone.now()
            event.save()
            return event
        event.event_type = parsed.event_type[:64]
        event.payment_reference = parsed.reference[:200]
        changed = _apply_event(event, parsed)
        event.outcome = WebhookEvent.Outcome.APPLIED if changed else WebhookEvent.Outcome.NO_CHANGE
        event.processed_at = timezone.now()
        event.save(
            update_fields=[
                "attempts",
                "event_type",
                "payment_reference",
                "deposit",
                "withdrawal",
                "outcome",
                "last_error",
                "processed_at",
            ]
        )
    return event


def _apply_event(event: WebhookEvent, parsed: ProviderEvent) -> bool:
    if parsed.subject == DEPOSIT:
        deposit = (
            Deposit.objects.select_for_update()
            .filter(reference=parsed.reference, provider=event.provider)
            .first()
        )
        if deposit is None:
            event.last_error = f"no deposit {parsed.reference}"
            return False
        event.deposit = deposit
        if parsed.result.status == CHARGEBACK:
            reference = f"{parsed.result.provider_reference}:chargeback"
            if Chargeback.objects.filter(provider_reference=reference).exists():
                return False
            record_chargeback(
                deposit=deposit,
                amount=deposit.credited_amount,
                provider_reference=reference,
                reason=parsed.event_type,
            )
            return True
        return advance_deposit(deposit, parsed.result, source="webhook", webhook=event)
    if parsed.subject == WITHDRAWAL:
        withdrawal = (
            Withdrawal.objects.select_for_update()
            .filter(reference=parsed.reference, provider=event.provider)
            .first()
        )
        if withdrawal is None:
            event.last_error = f"no withdrawal {parsed.reference}"
            return False
        event.withdrawal = withdrawal
        return advance_withdrawal(withdrawal, parsed.result, source="webhook", webhook=event)
    if parsed.subject == REFUND:
        refund = Refund.objects.select_for_update().filter(reference=parsed.reference).first()
        if refund is None:
            event.last_error = f"no refund {parsed.reference}"
            return False
        event.deposit_id = refund.deposit_id
        return advance_refund(refund, parsed.result, source="webhook", webhook=event)
    return False


def record_webhook_failure(*, event_id: int, error: str) -> None:
    """Count a processing attempt that raised; the row stays unprocessed for the sweeper."""
    WebhookEvent.objects.filter(pk=event_id, processed_at__isnull=True).update(
        last_error=error[:2000], outcome=WebhookEvent.Outcome.ERROR
    )


def unprocessed_webhook_ids(*, older_than: timedelta, limit: int = 1000) -> list[int]:
    cutoff = timezone.now() - older_than
    return list(
        WebhookEvent.objects.filter(
            processed_at__isnull=True, is_signature_valid=True, received_at__lte=cutoff
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
