"""The webhook inbox: check the delivery, store it, then process it once in a Celery task.

Only a delivery whose signature checks out is stored whole and processed; anything else is
answered 4xx. A delivery may carry several events (Adyen batches them); each event is applied
at most once, keyed by the signed identifier its connector reports (`ProviderEventKey`).
"""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from wallets.errors import DomainError

from .. import providers
from ..models import (
    Deposit,
    PaymentProvider,
    ProviderEventKey,
    Refund,
    WebhookEvent,
    Withdrawal,
)
from ..providers.base import (
    DEPOSIT,
    DISPUTE,
    DISPUTE_CHARGEBACK,
    DISPUTE_REVERSED,
    REFUND,
    WITHDRAWAL,
    InvalidSignature,
    MalformedWebhook,
    ProviderEvent,
    WebhookAck,
)
from .chargebacks import record_chargeback, reverse_chargeback
from .deposits import advance_deposit
from .refunds import advance_refund
from .withdrawals import advance_withdrawal

# What is kept of a delivery that is not signed right: enough to see what it was.
REJECTED_BODY_KEPT_BYTES = 1024


class WebhookRefused(DomainError):
    """A delivery we do not read at all (wrong content type, too large, not text)."""

    code = "webhook_refused"
    http_status = 400


class WebhookTooLarge(WebhookRefused):
    code = "webhook_too_large"
    http_status = 413


class WebhookContentType(WebhookRefused):
    code = "unsupported_media_type"
    http_status = 415


def _media_type(headers: dict) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _check_delivery(adapter, body: bytes, headers: dict) -> None:
    if len(body) > settings.PAYMENTS_WEBHOOK_MAX_BODY_BYTES:
        raise WebhookTooLarge(
            f"The body is larger than {settings.PAYMENTS_WEBHOOK_MAX_BODY_BYTES} bytes."
        )
    if _media_type(headers) not in adapter.webhook_content_types:
        raise WebhookContentType(
            f"Content-Type must be one of {', '.join(adapter.webhook_content_types)}."
        )
    if b"\x00" in body:
        raise WebhookRefused("The body contains a NUL byte.")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRefused("The body is not UTF-8.") from None
    for name, value in headers.items():
        if any(ord(c) < 32 and c != "\t" for c in name + value):
            raise WebhookRefused(f"Header {name!r} contains control characters.")


def receive_webhook(*, provider_code: str, body: bytes, headers: dict) -> WebhookEvent:
    """Check and store one delivery; after commit, queue its processing.

    Raises WebhookRefused (4xx, nothing written) for a delivery we do not read. A delivery
    whose signature does not check out is stored for the record — its first KB, digest and
    size — as `rejected`, and never processed."""
    provider = PaymentProvider.objects.get(code=provider_code)
    headers = {str(k).lower(): str(v) for k, v in headers.items()}
    adapter = providers.adapter_for(provider)
    _check_delivery(adapter, body, headers)
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


def webhook_ack(provider: PaymentProvider) -> WebhookAck:
    return providers.adapter_for(provider).webhook_ack()


def store_webhook(
    *, provider, body: bytes, headers: dict, is_signature_valid: bool, signature_error: str = ""
) -> WebhookEvent:
    """The inbox row alone, without queueing (the sweeper will find it)."""
    kept = body if is_signature_valid else body[:REJECTED_BODY_KEPT_BYTES]
    return WebhookEvent.objects.create(
        provider=provider,
        body=kept.decode("utf-8", errors="replace"),
        body_sha256=hashlib.sha256(body).hexdigest(),
        body_size=len(body),
        headers=headers,
        is_signature_valid=is_signature_valid,
        signature_error=signature_error[:200],
        outcome=WebhookEvent.Outcome.PENDING
        if is_signature_valid
        else WebhookEvent.Outcome.REJECTED,
    )


def process_webhook(*, event_id: int) -> WebhookEvent:
    """Apply one stored delivery, once.

    The connector parses it first, outside any transaction (BTCPay and Berlin Group fetch the
    object from the provider's API). Then the event row is locked for the whole application,
    so two workers given the same delivery apply it once; each event inside is applied at most
    once across deliveries (its signed key); payments move forward only, so a late event
    changes nothing."""
    event = WebhookEvent.objects.select_related("provider").get(pk=event_id)
    if event.processed_at is not None or not event.is_signature_valid:
        return event
    adapter = providers.adapter_for(event.provider)
    try:
        parsed = adapter.parse_webhook(body=event.body.encode(), headers=event.headers)
        error = ""
    except MalformedWebhook as exc:
        parsed, error = [], f"unparseable: {exc}"
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().select_related("provider").get(pk=event_id)
        if event.processed_at is not None:
            return event
        event.attempts += 1
        changed = False
        for item in parsed:
            changed = _apply_once(event, item) or changed
        if parsed:
            event.event_type = ", ".join(dict.fromkeys(p.event_type for p in parsed))[:64]
            event.payment_reference = (parsed[0].reference or parsed[0].provider_reference)[:200]
        if error:
            event.outcome = WebhookEvent.Outcome.ERROR
            event.last_error = error[:2000]
        else:
            event.outcome = (
                WebhookEvent.Outcome.APPLIED if changed else WebhookEvent.Outcome.NO_CHANGE
            )
        event.processed_at = timezone.now()
        event.save()
    return event


def _claim(event: WebhookEvent, item: ProviderEvent) -> bool:
    """Write the event's key; False if an earlier delivery already applied it."""
    try:
        with transaction.atomic():
            ProviderEventKey.objects.create(
                provider=event.provider,
                key=item.dedup_key[:255],
                webhook=event,
                event_type=item.event_type[:64],
            )
    except IntegrityError:
        return False
    return True


def _find(model, item: ProviderEvent, provider_filter: dict):
    queryset = model.objects.select_for_update().filter(**provider_filter)
    if model is Refund and item.provider_reference:
        # The provider's id wins; our reference (echoed in a field that may not be signed)
        # only finds a refund the provider has not named yet.
        found = queryset.filter(provider_reference=item.provider_reference).first()
        if found is not None or not item.reference:
            return found
        return queryset.filter(reference=item.reference, provider_reference="").first()
    if item.reference:
        found = queryset.filter(reference=item.reference).first()
        if found is not None:
            return found
    if item.provider_reference:
        return queryset.filter(provider_reference=item.provider_reference).first()
    return None


def _apply_once(event: WebhookEvent, item: ProviderEvent) -> bool:
    provider = event.provider
    if item.subject in (DEPOSIT, DISPUTE):
        subject = _find(Deposit, item, {"provider": provider})
    elif item.subject == WITHDRAWAL:
        subject = _find(Withdrawal, item, {"provider": provider})
    elif item.subject == REFUND:
        subject = _find(Refund, item, {"deposit__provider": provider})
    else:
        event.last_error = f"unknown subject {item.subject!r}"
        return False
    if subject is None:
        event.last_error = (
            f"no {item.subject} {item.reference or item.provider_reference} at {provider.code}"
        )[:2000]
        return False
    # Linked even when the event turns out to be a duplicate: the inbox shows what it was about.
    if item.subject == WITHDRAWAL:
        event.withdrawal = subject
    elif item.subject == REFUND:
        event.deposit_id = subject.deposit_id
    else:
        event.deposit = subject
    if not _claim(event, item):
        return False
    if item.subject == DEPOSIT:
        return advance_deposit(subject, item.result, source="webhook", webhook=event)
    if item.subject == WITHDRAWAL:
        return advance_withdrawal(subject, item.result, source="webhook", webhook=event)
    if item.subject == REFUND:
        return advance_refund(subject, item.result, source="webhook", webhook=event)
    return _apply_dispute(event, subject, item)


def _apply_dispute(event: WebhookEvent, deposit: Deposit, item: ProviderEvent) -> bool:
    dispute = item.dispute
    if dispute.currency and dispute.currency != deposit.currency_id:
        event.last_error = (
            f"dispute {dispute.dispute_reference} in {dispute.currency} on a "
            f"{deposit.currency_id} deposit: not applied"
        )
        return False
    reason = " ".join(filter(None, [item.event_type, dispute.reason_code, dispute.reason]))
    if dispute.action == DISPUTE_CHARGEBACK:
        before = deposit.chargebacks.filter(provider_reference=dispute.dispute_reference).exists()
        record_chargeback(
            deposit=deposit,
            amount=dispute.amount,
            provider_reference=dispute.dispute_reference,
            reason=reason,
            occurred_at=None,
        )
        return not before
    if dispute.action == DISPUTE_REVERSED:
        reverse_chargeback(
            deposit=deposit, provider_reference=dispute.dispute_reference, reason=reason
        )
        return True
    # Notified (no money yet) and lost (the chargeback already took it) move nothing.
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
