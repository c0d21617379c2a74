"""Refunds of succeeded deposits."""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from wallets import money
from wallets import services as ledger
from wallets.errors import MissingReason
from wallets.models import Account, JournalEntry

from .. import providers
from ..errors import InvalidTransition, RefundNotSupported, RefundTooLarge
from ..models import Deposit, Refund
from ..providers.base import FAILED, SUCCEEDED, ProviderResult, ProviderTimeout, ProviderUnavailable
from .casino import notify_deposit
from .chargebacks import top_up_capped_chargebacks
from .common import new_reference, record_transition, webhook_url

DS = Deposit.Status


def refund_deposit(*, deposit: Deposit, amount, actor, reason: str) -> Refund:
    """Send money of a succeeded deposit back to where it came from.

    The player's cash is debited when the refund is requested (so it cannot be bet or
    withdrawn meanwhile); a refund the provider fails is reversed back to the player."""
    if not reason.strip():
        raise MissingReason("A refund needs a reason.")
    if not deposit.provider.supports_refunds:
        raise RefundNotSupported(f"{deposit.provider.name} payments are returned as withdrawals.")
    amount = money.validate_amount(amount, deposit.currency_id)
    with transaction.atomic():
        locked = Deposit.objects.select_for_update().get(pk=deposit.pk)
        if locked.status not in (DS.SUCCEEDED, DS.PARTIALLY_REFUNDED):
            raise InvalidTransition(f"Deposit {locked.reference} is {locked.status}.")
        in_flight = sum(
            (r.amount for r in locked.refunds.filter(status=Refund.Status.PENDING)), Decimal(0)
        )
        left = (
            locked.credited_amount - locked.refunded_amount - locked.charged_back_amount - in_flight
        )
        if amount > left:
            raise RefundTooLarge(
                f"At most {money.quantize_money(left, locked.currency_id)} can be refunded.",
                refundable=str(money.quantize_money(left, locked.currency_id)),
            )
        refund = Refund.objects.create(
            reference=new_reference("ref"),
            deposit=locked,
            amount=amount,
            reason=reason,
            actor=actor,
        )
        _refund_entry(refund, direction=-1)
        record_transition(refund, "", source="admin", actor=actor, reason=reason)
    adapter = providers.adapter_for(locked.provider)
    try:
        result = adapter.refund(refund=refund, notify_url=webhook_url(locked.provider))
    except ProviderTimeout:
        return refund
    except ProviderUnavailable as exc:
        result = ProviderResult(status=FAILED, decline_code=exc.code)
    return apply_refund_result(refund_id=refund.pk, result=result, source="provider")


def _refund_entry(refund: Refund, *, direction: int, returned: bool = False) -> JournalEntry:
    """direction -1 takes the refund from the player's cash; +1 gives it back (the refund
    failed, or `returned` after it had succeeded)."""
    deposit = refund.deposit
    accounts = ledger.open_wallet(player=deposit.player, currency=deposit.currency_id)
    clearing = ledger.system_account(
        kind=Account.Kind.PROVIDER_CLEARING,
        currency=deposit.currency_id,
        system_code=deposit.provider.code,
    )
    amount = refund.amount * direction
    if direction < 0:
        key = f"refund:{refund.reference}"
    else:
        key = f"refund-{'returned' if returned else 'failed'}:{refund.reference}"
    return ledger.post_entry(
        kind=JournalEntry.Kind.REFUND,
        legs=[(accounts[Account.Kind.PLAYER_CASH], amount), (clearing, -amount)],
        idempotency_key=key,
        request={"refund": refund.reference, "amount": str(amount)},
        external_reference=deposit.reference,
        metadata={"refund": refund.reference},
        actor=refund.actor,
    )


def apply_refund_result(
    *, refund_id: int, result: ProviderResult, source: str, webhook=None
) -> Refund:
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        advance_refund(refund, result, source=source, webhook=webhook)
    return refund


def advance_refund(refund, result, *, source, webhook=None) -> bool:
    """Inside a transaction holding the refund's lock. Forward only, except that a refund
    reported failed after it succeeded was returned: the money goes back to the player."""
    if (
        result.provider_reference
        and not refund.provider_reference
        and refund.status == Refund.Status.PENDING
    ):
        # Known from now on: polling and later events find the refund by the provider's id.
        refund.provider_reference = result.provider_reference
        refund.save(update_fields=["provider_reference"])
    if refund.status == Refund.Status.SUCCEEDED and result.status == FAILED:
        return _return_refund(refund, source=source, webhook=webhook)
    if refund.status != Refund.Status.PENDING or result.status not in (SUCCEEDED, FAILED):
        return False
    now = timezone.now()
    deposit = Deposit.objects.select_for_update().get(pk=refund.deposit_id)
    if result.status == SUCCEEDED:
        refund.succeed(completed_at=now, provider_reference=result.provider_reference)
        before = deposit.status
        deposit.record_refund(amount=refund.amount)
        deposit.save()
        record_transition(
            deposit, before, source=source, webhook=webhook, reason=f"refund {refund.reference}"
        )
        notify_deposit(deposit)
        refund.save()
    else:
        refund.fail(completed_at=now)
        # Saved before the top-up, which reads the refunds still in flight from the database.
        refund.save()
        _refund_entry(refund, direction=1)
        # The refund no longer holds part of the deposit: a capped chargeback may now fit.
        top_up_capped_chargebacks(deposit)
    record_transition(refund, Refund.Status.PENDING, source=source, webhook=webhook)
    return True


def _return_refund(refund, *, source, webhook) -> bool:
    deposit = Deposit.objects.select_for_update().get(pk=refund.deposit_id)
    refund.mark_returned()
    refund.save()
    record_transition(
        refund, Refund.Status.SUCCEEDED, source=source, webhook=webhook, reason="returned"
    )
    _refund_entry(refund, direction=1, returned=True)
    before = deposit.status
    deposit.record_refund_return(amount=refund.amount)
    deposit.save()
    record_transition(
        deposit,
        before,
        source=source,
        webhook=webhook,
        reason=f"refund {refund.reference} returned",
    )
    top_up_capped_chargebacks(deposit)
    notify_deposit(deposit)
    return True
