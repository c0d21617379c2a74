"""The stuck-payment janitor."""

from datetime import timedelta

from django.utils import timezone

from .. import providers
from ..models import Deposit, Refund, Withdrawal
from ..providers.base import (
    CANCELLED,
    EXPIRED,
    PENDING,
    SUCCEEDED,
    ProviderResult,
    ProviderTimeout,
    ProviderUnavailable,
)
from .deposits import apply_deposit_result, expire_deposit
from .refunds import apply_refund_result
from .withdrawals import apply_withdrawal_result

DS = Deposit.Status
WS = Withdrawal.Status


def poll_stuck_payments(*, stuck_after: timedelta) -> dict[str, int]:
    """Ask providers about deposits, payouts and refunds open longer than `stuck_after`, apply
    what they say, and expire deposits past their expiry that the provider has nothing final
    on — cancelling them at the provider first where its protocol can, so an expired deposit
    can no longer be paid. A provider that cannot be reached does not keep a deposit open past
    its expiry. Approved withdrawals whose payout task was lost are sent again."""
    from ..tasks import start_payout as start_payout_task

    cutoff = timezone.now() - stuck_after
    counts = {
        "deposits_polled": 0,
        "deposits_expired": 0,
        "deposits_cancelled_at_provider": 0,
        "payouts_polled": 0,
        "payouts_sent": 0,
        "refunds_polled": 0,
    }
    stuck = Deposit.objects.filter(
        status__in=[DS.CREATED, DS.PENDING], updated_at__lte=cutoff, is_held_for_review=False
    ).select_related("provider")
    for deposit in stuck.order_by("created_at")[:500]:
        adapter = providers.adapter_for(deposit.provider)
        reachable = True
        try:
            result = adapter.fetch_payment_status(deposit=deposit)
            counts["deposits_polled"] += 1
        except (ProviderTimeout, ProviderUnavailable):
            # Unreachable: nothing learnt. Past its expiry the deposit is expired all the same
            # (a payment the provider completes later still credits, flagged as late).
            result, reachable = None, False
        if result is not None and result.status != PENDING:
            apply_deposit_result(
                deposit_id=deposit.pk, result=result, source="janitor", reason="polled"
            )
        elif deposit.expires_at <= timezone.now():
            if result is not None and result.is_awaiting_confirmation:
                continue  # paid in time; the provider is waiting for confirmations
            outcome = _cancel_at_provider(adapter, deposit) if reachable else None
            if outcome == CANCELLED:
                counts["deposits_cancelled_at_provider"] += 1
            elif outcome is None:
                expire_deposit(deposit=deposit)
            if outcome != SUCCEEDED:
                counts["deposits_expired"] += 1
        elif result is not None:
            apply_deposit_result(deposit_id=deposit.pk, result=result, source="janitor")
    for withdrawal in Withdrawal.objects.filter(status=WS.APPROVED, updated_at__lte=cutoff)[:500]:
        start_payout_task.delay(withdrawal.pk)
        counts["payouts_sent"] += 1
    processing = Withdrawal.objects.filter(
        status=WS.PROCESSING, updated_at__lte=cutoff
    ).select_related("provider", "instrument")
    for withdrawal in processing[:500]:
        adapter = providers.adapter_for(withdrawal.provider)
        try:
            result = adapter.fetch_payout_status(withdrawal=withdrawal)
        except (ProviderTimeout, ProviderUnavailable):
            continue
        counts["payouts_polled"] += 1
        if result is not None:
            apply_withdrawal_result(withdrawal_id=withdrawal.pk, result=result, source="janitor")
    refunds = Refund.objects.filter(
        status=Refund.Status.PENDING, created_at__lte=cutoff
    ).select_related("deposit__provider")
    for refund in refunds[:500]:
        adapter = providers.adapter_for(refund.deposit.provider)
        try:
            result = adapter.fetch_refund_status(refund=refund)
        except (ProviderTimeout, ProviderUnavailable):
            continue
        counts["refunds_polled"] += 1
        if result is not None:
            apply_refund_result(refund_id=refund.pk, result=result, source="janitor")
    return counts


def _cancel_at_provider(adapter, deposit) -> str | None:
    """Cancel an expired deposit at its provider and apply the answer. Returns CANCELLED (now
    expired, and cancelled at the provider), SUCCEEDED (paid after all: credited, or still
    confirming; not expired) or None (nothing done: the caller expires it)."""
    if not adapter.supports_cancel:
        return None
    try:
        result = adapter.cancel_payment(deposit=deposit)
    except (ProviderTimeout, ProviderUnavailable):
        return None
    if result is None:
        return None
    if result.is_awaiting_confirmation:
        return SUCCEEDED  # paid meanwhile, confirming: neither cancelled nor expired
    if result.status == SUCCEEDED:
        # Paid while we were cancelling: the money is in, credit it.
        apply_deposit_result(
            deposit_id=deposit.pk, result=result, source="janitor", reason="paid before cancel"
        )
        return SUCCEEDED
    apply_deposit_result(
        deposit_id=deposit.pk,
        result=ProviderResult(status=EXPIRED, provider_reference=result.provider_reference),
        source="janitor",
        reason="expired; cancelled at the provider",
    )
    return CANCELLED
