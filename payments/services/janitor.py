"""The stuck-payment janitor."""

from datetime import timedelta

from django.utils import timezone

from .. import providers
from ..models import Deposit, Refund, Withdrawal
from ..providers.base import PENDING, ProviderTimeout, ProviderUnavailable
from .deposits import apply_deposit_result, expire_deposit
from .refunds import apply_refund_result
from .withdrawals import apply_withdrawal_result

DS = Deposit.Status
WS = Withdrawal.Status


def poll_stuck_payments(*, stuck_after: timedelta) -> dict[str, int]:
    """Ask providers about deposits, payouts and refunds open longer than `stuck_after`, apply
    what they say, and expire deposits past their expiry that the provider has nothing final
    on. Approved withdrawals whose payout task was lost are sent again."""
    from ..tasks import start_payout as start_payout_task

    cutoff = timezone.now() - stuck_after
    counts = {
        "deposits_polled": 0,
        "deposits_expired": 0,
        "payouts_polled": 0,
        "payouts_sent": 0,
        "refunds_polled": 0,
    }
    stuck = Deposit.objects.filter(
        status__in=[DS.CREATED, DS.PENDING], updated_at__lte=cutoff, is_held_for_review=False
    ).select_related("provider")
    for deposit in stuck.order_by("created_at")[:500]:
        adapter = providers.adapter_for(deposit.provider)
        try:
            result = adapter.fetch_payment_status(deposit=deposit)
        except (ProviderTimeout, ProviderUnavailable):
            continue
        counts["deposits_polled"] += 1
        if result is not None and result.status != PENDING:
            apply_deposit_result(
                deposit_id=deposit.pk, result=result, source="janitor", reason="polled"
            )
        elif deposit.expires_at <= timezone.now():
            expire_deposit(deposit=deposit)
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
