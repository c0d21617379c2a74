"""Bonus money: grant, wagering progress, conversion to cash, forfeit.

Ledger shape (all through `services.post_entry`):
- grant:      bonus_expense → player_bonus  (kind bonus_grant)
- conversion: player_bonus  → player_cash   (kind bonus_conversion), when wagering is met
- forfeit:    player_bonus  → bonus_expense (kind bonus_forfeit), on expiry, operator cancel
              or a withdrawal request

Invariant: at most one active bonus per player and currency (a partial unique index), and the
player's bonus account holds money only while one is active; conversion and forfeit move its
whole balance. Lock order, kept by every flow here and in `game_services`: the player's cash
and bonus accounts (id order), then the bonus row. Payments' withdrawal flows lock the cash
account first too, so a forfeit called from inside a withdrawal request cannot deadlock.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from . import money, services
from .errors import DomainError, IdempotencyConflict, PlayerBlocked
from .models import Account, Bonus, JournalEntry, Player

Kind = Account.Kind
EntryKind = JournalEntry.Kind
# The bonus expense account is one per currency: bonuses are a marketing cost of the house.
BONUS_EXPENSE_CODE = "bonus"


class InvalidBonus(DomainError):
    """The bonus terms are not valid."""

    code = "invalid_bonus"
    http_status = 400


class BonusAlreadyActive(DomainError):
    """The player already has an active bonus in this currency."""

    code = "bonus_already_active"
    http_status = 409


class BonusNotActive(DomainError):
    """The bonus has already been converted or forfeited."""

    code = "bonus_not_active"
    http_status = 409


class MaxBetExceeded(DomainError):
    """The bet is above the largest bet allowed while the player's bonus is active."""

    code = "max_bet_exceeded"


@dataclass
class LockedWallet:
    """The player's cash and bonus accounts in one currency, row-locked for this transaction;
    `balance` on each is exact for as long as the transaction lasts."""

    player: Player
    cash: Account
    bonus: Account


def lock_wallet(*, player: Player, currency: str) -> LockedWallet:
    """Lock the player's cash and bonus accounts in `currency` (id order), creating them if
    missing, and read the player's status with them. Call inside a transaction."""
    wanted = (Kind.PLAYER_CASH, Kind.PLAYER_BONUS)
    accounts = _locked_accounts(player.pk, currency, wanted)
    if len(accounts) < len(wanted):
        services.open_wallet(player=player, currency=currency)
        accounts = _locked_accounts(player.pk, currency, wanted)
    by_kind = {a.kind: a for a in accounts}
    return LockedWallet(
        player=accounts[0].owner, cash=by_kind[Kind.PLAYER_CASH], bonus=by_kind[Kind.PLAYER_BONUS]
    )


_ACCOUNT_FIELDS = [f.attname for f in Account._meta.concrete_fields]
_PLAYER_FIELDS = [f.attname for f in Player._meta.concrete_fields]
# Every bet, win and rollback runs this: written once as SQL rather than compiled by the ORM
# on each call (PostgreSQL; same rows and lock as the ORM query below).
_LOCK_ACCOUNTS_SQL = f"""
SELECT {", ".join(f"a.{f.column}" for f in Account._meta.concrete_fields)},
       {", ".join(f"p.{f.column}" for f in Player._meta.concrete_fields)}
FROM {Account._meta.db_table} a
JOIN {Player._meta.db_table} p ON p.id = a.owner_id
WHERE a.owner_id = %s AND a.currency_id = %s AND a.kind = ANY(%s)
ORDER BY a.id
FOR NO KEY UPDATE OF a
"""


def _locked_accounts(player_id: int, currency: str, kinds) -> list[Account]:
    if connection.vendor != "postgresql":
        return list(
            Account.objects.select_for_update(no_key=True, of=("self",))
            .select_related("owner")
            .filter(owner_id=player_id, currency_id=currency, kind__in=kinds)
            .order_by("pk")
        )
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_ACCOUNTS_SQL, [player_id, currency, list(kinds)])
        rows = cursor.fetchall()
    accounts = []
    split = len(_ACCOUNT_FIELDS)
    for row in rows:
        account = Account.from_db(connection.alias, _ACCOUNT_FIELDS, row[:split])
        account.owner = Player.from_db(connection.alias, _PLAYER_FIELDS, row[split:])
        accounts.append(account)
    return accounts


def bonus_expense_account(currency: str) -> Account:
    return services.system_account(
        kind=Kind.BONUS_EXPENSE, currency=currency, system_code=BONUS_EXPENSE_CODE
    )


def _decimal(value, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidBonus(f"{name} {value!r} is not a number.", field=name) from None
    if not number.is_finite():
        raise InvalidBonus(f"{name} {value!r} is not a number.", field=name)
    return number


def applied_multiplier(*, player: Player, requested: Decimal) -> Decimal:
    """The requested multiplier, lowered to the cap of the player's country if it has one."""
    cap = settings.BONUS_WAGERING_CAPS.get(player.country.upper())
    if cap is None:
        return requested
    return min(requested, Decimal(str(cap)))


# --- grant ---------------------------------------------------------------------------------


def grant_bonus(
    *,
    player: Player,
    currency: str,
    amount,
    wagering_multiplier,
    expires_at: datetime,
    idempotency_key: str,
    max_bet=None,
    actor=None,
    reason: str = "",
) -> Bonus:
    """Credit bonus money to the player (bonus expense → player bonus) with its wagering terms.

    The multiplier is capped by the player's jurisdiction (BONUS_WAGERING_CAPS) here, once:
    the requirement a player sees never changes under them. Same key and same terms return
    the bonus already granted; same key and other terms raise IdempotencyConflict.
    """
    amount = money.validate_amount(amount, currency)
    requested = _decimal(wagering_multiplier, "wagering_multiplier")
    if requested < 0 or requested > 1000 or requested != requested.quantize(Decimal("0.01")):
        raise InvalidBonus("The wagering multiplier must be between 0 and 1000, e.g. 35.")
    requested = requested.quantize(Decimal("0.01"))
    if max_bet is not None:
        max_bet = money.validate_amount(max_bet, currency)
    if expires_at <= timezone.now():
        raise InvalidBonus("The expiry must be in the future.", field="expires_at")
    terms = {
        "player": player.pk,
        "currency": currency,
        "amount": str(amount),
        "multiplier": str(requested),
        "max_bet": str(max_bet) if max_bet is not None else None,
        "expires_at": expires_at.isoformat(),
    }
    existing = Bonus.objects.filter(grant_key=idempotency_key).first()
    if existing is not None:
        return _replayed_grant(existing, terms)
    multiplier = applied_multiplier(player=player, requested=requested)
    try:
        with transaction.atomic():
            wallet = lock_wallet(player=player, currency=currency)
            if not wallet.player.is_active:
                raise PlayerBlocked(
                    f"Player {wallet.player.external_id} is {wallet.player.status}.",
                    status=wallet.player.status,
                )
            if Bonus.objects.filter(
                player=player, currency_id=currency, status=Bonus.Status.ACTIVE
            ).exists():
                raise BonusAlreadyActive(currency=currency)
            bonus = Bonus.objects.create(
                player=player,
                currency_id=currency,
                amount=amount,
                wagering_multiplier=requested,
                applied_multiplier=multiplier,
                wagering_required=money.quantize_money(amount * multiplier, currency),
                max_bet=max_bet,
                expires_at=expires_at,
                grant_key=idempotency_key,
                reason=reason,
                granted_by=actor,
            )
            bonus.grant_entry = services.post_entry(
                kind=EntryKind.BONUS_GRANT,
                legs=[(bonus_expense_account(currency), -amount), (wallet.bonus, amount)],
                idempotency_key=f"bonus-grant:{idempotency_key}",
                request=terms,
                external_reference=f"bonus:{bonus.pk}",
                metadata={"bonus": bonus.pk, "multiplier": str(multiplier)},
                actor=actor,
            )
            bonus.save(update_fields=["grant_entry"])
            wallet.bonus.balance += amount
            if bonus.wagering_required == 0:
                _convert(bonus=bonus, wallet=wallet)
            return bonus
    except IntegrityError:
        # A concurrent grant with the same key won, or another bonus became active meanwhile.
        existing = Bonus.objects.filter(grant_key=idempotency_key).first()
        if existing is not None:
            return _replayed_grant(existing, terms)
        raise BonusAlreadyActive(currency=currency) from None


def _replayed_grant(bonus: Bonus, terms: dict) -> Bonus:
    stored = {
        "player": bonus.player_id,
        "currency": bonus.currency_id,
        "amount": str(money.quantize_money(bonus.amount, bonus.currency_id)),
        "multiplier": str(bonus.wagering_multiplier),
        "max_bet": (
            str(money.quantize_money(bonus.max_bet, bonus.currency_id))
            if bonus.max_bet is not None
            else None
        ),
        "expires_at": bonus.expires_at.isoformat(),
    }
    if stored != terms:
        raise IdempotencyConflict(
            f"Idempotency key {bonus.grant_key!r} was used for a different bonus.",
            bonus=bonus.pk,
        )
    return bonus


# --- used by the game wallet inside its transaction -----------------------------------------


def active_bonus_for_play(*, wallet: LockedWallet, currency: str) -> Bonus | None:
    """The player's active bonus in `currency`, row-locked, or None. A bonus past its expiry
    is forfeited here and now rather than left spendable until the beat job runs.
    Call inside a transaction, after `lock_wallet`."""
    bonus = (
        Bonus.objects.select_for_update()
        .filter(player=wallet.player, currency_id=currency, status=Bonus.Status.ACTIVE)
        .first()
    )
    if bonus is not None and bonus.expires_at <= timezone.now():
        _forfeit(bonus=bonus, wallet=wallet, cause=Bonus.ForfeitCause.EXPIRED, reason="expired")
        return None
    return bonus


def lock_bonuses(ids) -> dict[int, Bonus]:
    """Row-lock bonuses by id (id order). Call inside a transaction, after `lock_wallet`."""
    if not ids:
        # Most wins pay stakes that had no bonus share: skip building a query for nothing.
        return {}
    return {b.pk: b for b in Bonus.objects.select_for_update().filter(pk__in=ids).order_by("pk")}


def add_wagering(*, bonus: Bonus, wallet: LockedWallet, amount: Decimal) -> Decimal:
    """Count a bet towards the bonus; convert the bonus when the requirement is met.
    Returns the amount converted to cash (zero if not converted). `wallet` balances must be
    those after the bet. Call inside a transaction holding the wallet and bonus locks."""
    bonus.wagered += amount
    bonus.save(update_fields=["wagered"])
    if bonus.wagered >= bonus.wagering_required:
        return _convert(bonus=bonus, wallet=wallet)
    return Decimal(0)


def remove_wagering(*, bonus: Bonus, amount: Decimal) -> None:
    """A rolled-back bet no longer counts. Call holding the bonus lock."""
    bonus.wagered = max(bonus.wagered - amount, Decimal(0))
    bonus.save(update_fields=["wagered"])


def _convert(*, bonus: Bonus, wallet: LockedWallet) -> Decimal:
    remaining = wallet.bonus.balance
    entry = None
    if remaining > 0:
        entry = services.post_entry(
            kind=EntryKind.BONUS_CONVERSION,
            legs=[(wallet.bonus, -remaining), (wallet.cash, remaining)],
            idempotency_key=f"bonus:{bonus.pk}:conversion",
            request={"bonus": bonus.pk, "amount": str(remaining)},
            external_reference=f"bonus:{bonus.pk}",
            metadata={"bonus": bonus.pk, "wagered": str(bonus.wagered)},
        )
        wallet.bonus.balance -= remaining
        wallet.cash.balance += remaining
    bonus.convert(amount=remaining, entry=entry, closed_at=timezone.now())
    bonus.save()
    return remaining


def _forfeit(*, bonus: Bonus, wallet: LockedWallet, cause: str, reason: str, actor=None) -> Bonus:
    remaining = wallet.bonus.balance
    entry = None
    if remaining > 0:
        entry = services.post_entry(
            kind=EntryKind.BONUS_FORFEIT,
            legs=[
                (wallet.bonus, -remaining),
                (bonus_expense_account(bonus.currency_id), remaining),
            ],
            idempotency_key=f"bonus:{bonus.pk}:forfeit",
            request={"bonus": bonus.pk, "amount": str(remaining), "cause": cause},
            external_reference=f"bonus:{bonus.pk}",
            metadata={"bonus": bonus.pk, "cause": cause, "reason": reason},
            actor=actor,
        )
        wallet.bonus.balance -= remaining
    bonus.forfeit(
        cause=cause,
        amount=remaining,
        entry=entry,
        closed_at=timezone.now(),
        actor=actor,
        reason=reason,
    )
    bonus.save()
    return bonus


def _forfeit_by_id(*, bonus_id: int, cause: str, reason: str, actor=None) -> Bonus | None:
    """Lock in the documented order (accounts, then bonus) and forfeit if still active."""
    with transaction.atomic():
        unlocked = Bonus.objects.select_related("player").get(pk=bonus_id)
        wallet = lock_wallet(player=unlocked.player, currency=unlocked.currency_id)
        bonus = Bonus.objects.select_for_update().get(pk=bonus_id)
        if not bonus.is_active:
            return None
        return _forfeit(bonus=bonus, wallet=wallet, cause=cause, reason=reason, actor=actor)


# --- operator, payments and beat entry points -------------------------------------------------


def cancel_bonus(*, bonus: Bonus, actor, reason: str) -> Bonus:
    """An operator withdraws the bonus: the remaining bonus money is forfeited."""
    if not reason.strip() or actor is None:
        raise InvalidBonus("Cancelling a bonus needs a reason and an operator.")
    forfeited = _forfeit_by_id(
        bonus_id=bonus.pk, cause=Bonus.ForfeitCause.CANCELLED, reason=reason, actor=actor
    )
    if forfeited is None:
        raise BonusNotActive(bonus=bonus.pk)
    return forfeited


def forfeit_pending_bonuses(*, player: Player, reason: str) -> list[Bonus]:
    """Forfeit every bonus of the player whose wagering is still pending, in all currencies.

    Payments calls this when the player requests a withdrawal: bonus money never leaves as
    cash before it is wagered. Atomic; inside a caller's transaction it joins it. A caller
    that also holds the withdrawal should call this first, or lock the cash account before it,
    to keep the lock order (accounts, then bonus). Returns the bonuses it forfeited.
    """
    forfeited = []
    with transaction.atomic():
        pending = Bonus.objects.filter(player=player, status=Bonus.Status.ACTIVE)
        for bonus_id in pending.order_by("pk").values_list("pk", flat=True):
            bonus = _forfeit_by_id(
                bonus_id=bonus_id, cause=Bonus.ForfeitCause.WITHDRAWAL, reason=reason
            )
            if bonus is not None:
                forfeited.append(bonus)
    return forfeited


def expire_bonuses(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Forfeit active bonuses past their expiry; return how many. Each in its own
    transaction, so one failure does not hold back the rest; safe to run twice."""
    now = now or timezone.now()
    due = Bonus.objects.filter(status=Bonus.Status.ACTIVE, expires_at__lte=now)
    count = 0
    for bonus_id in due.order_by("expires_at").values_list("pk", flat=True)[:batch_size]:
        if _forfeit_by_id(bonus_id=bonus_id, cause=Bonus.ForfeitCause.EXPIRED, reason="expired"):
            count += 1
    return count
