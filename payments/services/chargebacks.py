"""Chargebacks: a provider takes a deposit's money back, and may give it back later.

Invariants (backed by `deposit_refunds_and_chargebacks_within_credit`):
- money is taken back only from a credited deposit, never more than was credited minus
  refunds (succeeded or in flight) and earlier chargebacks;
- a chargeback that arrives before the deposit is credited is held, and applied by the credit
  itself in the same transaction (`apply_held_chargebacks`), so the house never pays twice;
- one chargeback per dispute reference, applied once; one reversal, applied once — in any
  order: a reversal that overtakes its chargeback leaves the chargeback with nothing to do;
- a chargeback capped for lack of room is topped up to what the provider took as soon as room
  frees (another dispute reversed, a refund failed or came back), so the order in which a
  provider reports a second chargeback and the first one's reversal does not matter.
"""

import hashlib
from decimal import Decimal

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from wallets import money
from wallets import services as ledger
from wallets.errors import MissingReason
from wallets.models import Account, JournalEntry

from ..models import Chargeback, Deposit, Refund

DS = Deposit.Status
CS = Chargeback.Status
CREDITED = (DS.SUCCEEDED, DS.PARTIALLY_REFUNDED, DS.REFUNDED)


def record_chargeback(
    *,
    deposit: Deposit,
    amount=None,
    provider_reference: str,
    reason: str = "",
    occurred_at=None,
) -> Chargeback:
    """The provider took `amount` (None: the whole credited amount) of a deposit back.
    Idempotent by `provider_reference` (the provider's dispute id) on this deposit.

    The provider's clearing account is credited (it no longer owes us the money); the
    player's cash pays as much as it holds and the rest is booked to `write_off`, because a
    player balance may never go negative."""
    if not provider_reference:
        raise MissingReason("A chargeback needs the provider's reference.")
    if amount is not None:
        amount = money.validate_amount(amount, deposit.currency_id)
    with transaction.atomic():
        locked = Deposit.objects.select_for_update().select_related("provider").get(pk=deposit.pk)
        existing = Chargeback.objects.filter(
            deposit=locked, provider_reference=provider_reference
        ).first()
        if existing is not None:
            return existing
        requested = amount if amount is not None else locked.credited_amount
        try:
            with transaction.atomic():
                chargeback = Chargeback.objects.create(
                    deposit=locked,
                    amount=requested,
                    requested_amount=requested,
                    status=CS.HELD,
                    provider_reference=provider_reference,
                    reason=reason,
                    occurred_at=occurred_at,
                )
        except IntegrityError:
            return Chargeback.objects.get(deposit=locked, provider_reference=provider_reference)
        if locked.status in CREDITED:
            _apply(chargeback, locked)
    return chargeback


def apply_held_chargebacks(deposit: Deposit) -> list[Chargeback]:
    """Inside the transaction that credits `deposit` (holding its lock): apply the chargebacks
    that arrived before the credit."""
    held = list(
        Chargeback.objects.select_for_update()
        .filter(deposit=deposit, status=CS.HELD)
        .order_by("pk")
    )
    for chargeback in held:
        _apply(chargeback, deposit)
    return held


def _available(deposit: Deposit) -> Decimal:
    """What a chargeback may still take: credited minus refunds (succeeded or in flight) and
    chargebacks already booked."""
    in_flight = sum(
        (r.amount for r in deposit.refunds.filter(status=Refund.Status.PENDING)), Decimal(0)
    )
    left = (
        deposit.credited_amount - deposit.refunded_amount - deposit.charged_back_amount - in_flight
    )
    return max(left, Decimal(0))


def _apply(chargeback: Chargeback, deposit: Deposit) -> None:
    """Book a held chargeback against a credited deposit (both locked by the caller)."""
    booked = min(chargeback.requested_amount or chargeback.amount, _available(deposit))
    if booked < (chargeback.requested_amount or chargeback.amount):
        chargeback.reason = (
            f"{chargeback.reason} [capped at {booked}: the deposit had no more to take back]"
        ).strip()
    chargeback.amount = booked
    chargeback.status = CS.RECEIVED
    chargeback.applied_at = timezone.now()
    if booked:
        chargeback.written_off = _post(chargeback, deposit, booked)
        deposit.charged_back_amount += booked
        deposit.save(update_fields=["charged_back_amount", "updated_at"])
    chargeback.save()


def _post(chargeback: Chargeback, deposit: Deposit, amount: Decimal, *, part: str = "") -> Decimal:
    """Take `amount` back: clearing is credited, the player's cash pays what it holds, the
    rest is written off. Returns the written-off part."""
    currency = deposit.currency_id
    accounts = ledger.open_wallet(player=deposit.player, currency=currency)
    cash = Account.objects.select_for_update(no_key=True).get(
        pk=accounts[Account.Kind.PLAYER_CASH].pk
    )
    from_player = min(cash.balance, amount)
    written_off = amount - from_player
    legs = [(_clearing(deposit), amount)]
    if from_player:
        legs.append((cash, -from_player))
    if written_off:
        legs.append((_write_off(currency), -written_off))
    ledger.post_entry(
        kind=JournalEntry.Kind.CHARGEBACK,
        legs=legs,
        idempotency_key=_entry_key("chargeback", deposit, chargeback, part=part),
        request={"deposit": deposit.reference, "amount": str(amount)},
        external_reference=deposit.reference,
        metadata={
            "provider_reference": chargeback.provider_reference,
            "written_off": str(written_off),
            "reason": chargeback.reason,
        },
    )
    return written_off


def reverse_chargeback(
    *, deposit: Deposit, provider_reference: str, reason: str = ""
) -> Chargeback:
    """The provider gave a chargeback's money back (the dispute was won). Idempotent.

    The entry mirrors the chargeback: clearing owes us again, the player gets back what their
    cash paid, the write-off is undone. A reversal that arrives before its chargeback is
    recorded as a reversed chargeback that never moved money, so the late chargeback is a
    no-op."""
    with transaction.atomic():
        locked = Deposit.objects.select_for_update().select_related("provider").get(pk=deposit.pk)
        chargeback = (
            Chargeback.objects.select_for_update()
            .filter(deposit=locked, provider_reference=provider_reference)
            .first()
        )
        now = timezone.now()
        if chargeback is None:
            return Chargeback.objects.create(
                deposit=locked,
                amount=Decimal(0),
                status=CS.REVERSED,
                provider_reference=provider_reference,
                reason=f"{reason} [reversal arrived before the chargeback]".strip(),
                reversed_at=now,
            )
        if chargeback.status == CS.REVERSED:
            return chargeback
        was_applied = chargeback.status == CS.RECEIVED and chargeback.amount > 0
        chargeback.status = CS.REVERSED
        chargeback.reversed_at = now
        if was_applied:
            _post_reversal(chargeback, locked)
            locked.charged_back_amount -= chargeback.amount
            locked.save(update_fields=["charged_back_amount", "updated_at"])
        elif chargeback.applied_at is None:
            chargeback.amount = Decimal(0)
        chargeback.save()
        if was_applied:
            top_up_capped_chargebacks(locked)
    return chargeback


def top_up_capped_chargebacks(deposit: Deposit) -> None:
    """Inside a transaction holding the deposit's lock, after something gave the deposit room
    back: book the part of capped chargebacks that did not fit before, oldest first."""
    capped = (
        Chargeback.objects.select_for_update()
        .filter(
            deposit=deposit,
            status=CS.RECEIVED,
            requested_amount__gt=models.F("amount"),
        )
        .order_by("pk")
    )
    for chargeback in capped:
        extra = min(chargeback.requested_amount - chargeback.amount, _available(deposit))
        if extra <= 0:
            return
        chargeback.written_off += _post(
            chargeback, deposit, extra, part=f"topup-from-{chargeback.amount}"
        )
        chargeback.amount += extra
        chargeback.reason = f"{chargeback.reason} [topped up to {chargeback.amount}]"
        chargeback.save()
        deposit.charged_back_amount += extra
        deposit.save(update_fields=["charged_back_amount", "updated_at"])


def _post_reversal(chargeback: Chargeback, deposit: Deposit) -> None:
    currency = deposit.currency_id
    accounts = ledger.open_wallet(player=deposit.player, currency=currency)
    to_player = chargeback.amount - chargeback.written_off
    legs = [(_clearing(deposit), -chargeback.amount)]
    if to_player:
        legs.append((accounts[Account.Kind.PLAYER_CASH], to_player))
    if chargeback.written_off:
        legs.append((_write_off(currency), chargeback.written_off))
    ledger.post_entry(
        kind=JournalEntry.Kind.CHARGEBACK_REVERSAL,
        legs=legs,
        idempotency_key=_entry_key("chargeback-reversal", deposit, chargeback),
        request={"deposit": deposit.reference, "amount": str(chargeback.amount)},
        external_reference=deposit.reference,
        metadata={"provider_reference": chargeback.provider_reference},
    )


def _entry_key(prefix: str, deposit: Deposit, chargeback: Chargeback, *, part: str = "") -> str:
    """The ledger key of a chargeback's entry: the deposit (unique), the dispute, and which
    top-up it is; a dispute id too long for the key column is replaced by its digest."""
    dispute = chargeback.provider_reference + (f"#{part}" if part else "")
    key = f"{prefix}:{deposit.reference}:{dispute}"
    if len(key) > 200:
        key = f"{prefix}:{deposit.reference}:{hashlib.sha256(dispute.encode()).hexdigest()}"
    return key


def _clearing(deposit: Deposit) -> Account:
    return ledger.system_account(
        kind=Account.Kind.PROVIDER_CLEARING,
        currency=deposit.currency_id,
        system_code=deposit.provider.code,
    )


def _write_off(currency: str) -> Account:
    return ledger.system_account(kind=Account.Kind.WRITE_OFF, currency=currency)
