"""Responsible gambling: the player's own deposit limits and self-exclusions (time-outs)."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from wallets.models import Player
from wallets.money import currency_exponent, validate_amount

from ..errors import InvalidLimit
from ..models import DepositLimit, SelfExclusion
from .audit import audit


def set_deposit_limit(
    *, player: Player, currency: str, period: str, amount, actor=None, now=None
) -> DepositLimit:
    """Set (amount) or remove (None) the player's deposit limit for `period` in `currency`.

    A first limit or a lower one applies at once; a higher one or a removal waits for the
    cooling-off period, and until then the current limit stays in force.
    """
    if period not in DepositLimit.Period.values:
        raise InvalidLimit(f"Unknown period {period!r}.", period=period)
    if amount is not None:
        amount = validate_amount(amount, currency)
    else:
        currency_exponent(currency)
    now = now or timezone.now()
    cooling_off = timedelta(hours=settings.COMPLIANCE_LIMIT_INCREASE_COOLING_OFF_HOURS)
    with transaction.atomic():
        DepositLimit.objects.get_or_create(player=player, currency_id=currency, period=period)
        limit = DepositLimit.objects.select_for_update().get(
            player=player, currency_id=currency, period=period
        )
        current = limit.effective_amount(now)
        applies_now = amount is not None and (current is None or amount <= current)
        if applies_now:
            limit.amount = amount
            limit.pending_amount, limit.pending_removal, limit.pending_from = None, False, None
        else:
            limit.amount = current
            limit.pending_amount = amount
            limit.pending_removal = amount is None
            limit.pending_from = now + cooling_off
        limit.save()
        audit(
            action="deposit_limit_set",
            actor=actor,
            player=player,
            subject=f"deposit_limit:{limit.pk}",
            currency=currency,
            period=period,
            requested=str(amount) if amount is not None else None,
            in_force=str(limit.amount) if limit.amount is not None else None,
            pending_from=limit.pending_from.isoformat() if limit.pending_from else None,
        )
    return limit


# The longest fixed exclusion, in days (ten years); longer is `permanent`. Also keeps the end
# date inside what a calendar (and the database) can hold: `days=10**18` is refused, not a 500.
MAX_EXCLUSION_DAYS = 3650


def self_exclude(
    *,
    player: Player,
    kind: str,
    days: int | None = None,
    permanent: bool = False,
    reason: str = "",
    actor=None,
) -> SelfExclusion:
    """Start a time-out (1-42 days) or a self-exclusion (at least 180 days, or permanent).

    Effective at once and never shortened: a new, shorter one does not end a longer one,
    because `active_self_exclusion` reads every row.
    """
    if days is not None and not (isinstance(days, int) and 1 <= days <= MAX_EXCLUSION_DAYS):
        raise InvalidLimit(
            f"An exclusion lasts 1 to {MAX_EXCLUSION_DAYS} days, or is permanent.", days=days
        )
    if kind == SelfExclusion.Kind.TIMEOUT:
        if permanent or days is None or not 1 <= days <= 42:
            raise InvalidLimit("A time-out lasts 1 to 42 days.", days=days)
    elif kind == SelfExclusion.Kind.SELF_EXCLUSION:
        if not permanent and (days is None or days < 180):
            raise InvalidLimit("A self-exclusion lasts at least 180 days or is permanent.")
    else:
        raise InvalidLimit(f"Unknown exclusion kind {kind!r}.", kind=kind)
    now = timezone.now()
    with transaction.atomic():
        exclusion = SelfExclusion.objects.create(
            player=player,
            kind=kind,
            starts_at=now,
            ends_at=None if permanent else now + timedelta(days=days),
            reason=reason,
        )
        audit(
            action="self_excluded",
            actor=actor,
            player=player,
            subject=f"self_exclusion:{exclusion.pk}",
            reason=reason,
            kind=kind,
            ends_at=exclusion.ends_at.isoformat() if exclusion.ends_at else None,
        )
    return exclusion
