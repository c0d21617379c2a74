"""Helpers shared by the payments services."""

import hashlib
import json
import secrets

from django.conf import settings
from django.urls import reverse

from wallets.errors import IdempotencyConflict

from ..models import Deposit, PaymentProvider, PaymentTransition, Refund, Withdrawal


def new_reference(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def fingerprint(request: dict) -> str:
    return hashlib.sha256(
        json.dumps(request, sort_keys=True, default=str, separators=(",", ":")).encode()
    ).hexdigest()


def webhook_url(provider: PaymentProvider) -> str:
    path = reverse("payments-webhook", kwargs={"provider_code": provider.code})
    return settings.PAYMENTS_PUBLIC_BASE_URL.rstrip("/") + path


def record_transition(
    subject, from_status: str, *, source: str, actor=None, webhook=None, reason=""
):
    """Audit row for a transition that just happened on `subject` (inside its transaction)."""
    field = {Deposit: "deposit", Withdrawal: "withdrawal", Refund: "refund"}[type(subject)]
    PaymentTransition.objects.create(
        **{field: subject},
        from_status=from_status,
        to_status=subject.status,
        actor=actor if getattr(actor, "pk", None) else None,
        webhook=webhook,
        source=source,
        reason=reason[:2000],
    )


def replayed(existing, request_hash: str, idempotency_key: str):
    """The payment an idempotency key already made, marked `is_replay` so the API answers 200
    (not 201) — also for the request that lost a race on the unique key."""
    if existing.request_hash != request_hash:
        raise IdempotencyConflict(
            f"Idempotency key {idempotency_key!r} was used for a different request.",
            idempotency_key=idempotency_key,
            reference=existing.reference,
        )
    existing.is_replay = True
    return existing
