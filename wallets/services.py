"""Every write to the ledger goes through this module.

Each money-moving service is atomic and idempotent by key: it validates, then hands
`_post_entry` a list of legs. `_post_entry` inserts the entry first, so a second request with
the same key waits on the unique index and then replays the stored result instead of moving
money twice; then it moves checked (player) balances with one conditional UPDATE per account,
in account-id order so two entries touching the same accounts can never deadlock; then it
writes the postings. Rolled-up (system) accounts are never locked: see `BalanceDelta`.
"""

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from .currencies import SEEDED_CURRENCIES
from .errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidReversal,
    InvalidStatusChange,
    MissingReason,
    NonPositiveAmount,
    PlayerBlocked,
    UnbalancedEntry,
    UnknownCurrency,
)
from .models import (
    Account,
    BalanceDelta,
    Currency,
    JournalEntry,
    Player,
    PlayerStatusChange,
    Posting,
)

# The money helpers live in `wallets.money`, below this module; this module uses them, and
# nothing outside it may reach them through here (`tests/wallets/test_money.py` checks).
from .money import currency_exponent, format_money, minor_unit, quantize_money, validate_amount

Kind = Account.Kind
EntryKind = JournalEntry.Kind

# --- currencies ---------------------------------------------------------------------------


def seed_currencies() -> None:
    """Create the platform's currencies if missing (the migration does this too)."""
    Currency.objects.bulk_create(
        [Currency(code=c, name=n, exponent=e, is_crypto=k) for c, n, e, k in SEEDED_CURRENCIES],
        ignore_conflicts=True,
    )


# --- players ------------------------------------------------------------------------------


def register_player(
    *,
    external_id: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    date_of_birth=None,
    country: str = "",
) -> Player:
    """Create the player, or update the profile fields of the one with this external id."""
    player, _ = Player.objects.update_or_create(
        external_id=external_id,
        defaults={
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "date_of_birth": date_of_birth,
            "country": country.upper(),
        },
    )
    return player


def _change_player_status(*, player: Player, to_status: str, allowed_from, actor, reason: str):
    if not reason.strip():
        raise MissingReason("A status change needs a reason.")
    with transaction.atomic():
        locked = Player.objects.select_for_update().get(pk=player.pk)
        if locked.status not in allowed_from:
            raise InvalidStatusChange(
                f"Cannot move a {locked.status} player to {to_status}.",
                status=locked.status,
            )
        PlayerStatusChange.objects.create(
            player=locked,
            from_status=locked.status,
            to_status=to_status,
            actor=actor,
            reason=reason,
        )
        locked.status = to_status
        locked.save(update_fields=["status"])
    player.status = to_status
    return locked


def freeze_player(*, player: Player, actor, reason: str) -> Player:
    """Stop a player's deposits, bets, withdrawals and conversions; wins still pay out."""
    S = Player.Status
    return _change_player_status(
        player=player, to_status=S.FROZEN, allowed_from=[S.ACTIVE], actor=actor, reason=reason
    )


def unfreeze_player(*, player: Player, actor, reason: str) -> Player:
    S = Player.Status
    return _change_player_status(
        player=player, to_status=S.ACTIVE, allowed_from=[S.FROZEN], actor=actor, reason=reason
    )


def close_player(*, player: Player, actor, reason: str) -> Player:
    S = Player.Status
    return _change_player_status(
        player=player,
        to_status=S.CLOSED,
        allowed_from=[S.ACTIVE, S.FROZEN],
        actor=actor,
        reason=reason,
    )


# --- accounts -----------------------------------------------------------------------------


def open_wallet(*, player: Player, currency: str) -> dict[str, Account]:
    """Make sure the player has cash, bonus and hold accounts in `currency`; return them by kind."""
    currency_exponent(currency)
    Account.objects.bulk_create(
        [Account(owner=player, currency_id=currency, kind=kind) for kind in Account.PLAYER_KINDS],
        ignore_conflicts=True,
    )
    return {a.kind: a for a in Account.objects.filter(owner=player, currency_id=currency)}


def system_account(*, kind: str, currency: str, system_code: str = "") -> Account:
    currency_exponent(currency)
    account, _ = Account.objects.get_or_create(
        owner=None,
        kind=kind,
        currency_id=currency,
        system_code=system_code,
        defaults={"allows_negative": True},
    )
    return account


@dataclass(frozen=True)
class _Wallet:
    accounts: dict[str, Account]
    system: Account | None


def _wallet_sql(owner, currency, kind, currency_again, code) -> str:
    # Two index lookups (the player's accounts, the one system account) rather than one OR
    # that the planner may answer by scanning every account in the currency.
    return f"""
    SELECT account.id, account.owner_id, account.kind, account.allows_negative, player.status,
           player.external_id
    FROM {Account._meta.db_table} account
    JOIN {Player._meta.db_table} player ON player.id = account.owner_id
    WHERE account.owner_id = {owner} AND account.currency_id = {currency}
    UNION ALL
    SELECT id, NULL, kind, allows_negative, NULL, NULL FROM {Account._meta.db_table}
    WHERE owner_id IS NULL AND kind = {kind} AND currency_id = {currency_again}
      AND system_code = {code}
    """


_WALLET_SQL_PREPARED = _wallet_sql("$1", "$2", "$3", "$2", "$4")
_WALLET_SQL_PORTABLE = _wallet_sql(*["%s"] * 5)


def _load_wallet_rows(player: Player, currency: str, system_kind: str, system_code: str):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _execute_prepared(
                cursor,
                "ledger_load_wallet",
                "bigint, text, text, text",
                _WALLET_SQL_PREPARED,
                [player.pk, currency, system_kind, system_code],
            )
        else:
            cursor.execute(
                _WALLET_SQL_PORTABLE, [player.pk, currency, system_kind, currency, system_code]
            )
        return cursor.fetchall()


# Account ids never change once created (accounts are never deleted), so on the one-statement
# path a process remembers them and skips the lookup; the player's status, which does change,
# is checked by the posting statement itself. Plain dict operations are atomic under the GIL.
_wallet_cache: dict[tuple, _Wallet] = {}
_WALLET_CACHE_LIMIT = 100_000


def _posts_in_one_statement() -> bool:
    return connection.vendor == "postgresql" and settings.LEDGER_SINGLE_STATEMENT_POSTING


def _wallet(
    *,
    player: Player,
    currency: str,
    system_kind: str | None = None,
    system_code: str = "",
    active_only: bool,
) -> _Wallet:
    """Load the player's accounts in `currency` and (optionally) one system account in one
    query, creating whatever is missing. The player's status is read fresh with them, or,
    for a wallet remembered from before, checked when the entry is written."""
    cache_key = (connection.settings_dict["NAME"], player.pk, currency, system_kind, system_code)
    cached = _wallet_cache.get(cache_key) if _posts_in_one_statement() else None
    if cached is not None:
        return cached
    rows = _load_wallet_rows(player, currency, system_kind or "", system_code)
    if len(rows) < len(Account.PLAYER_KINDS) + bool(system_kind):
        open_wallet(player=player, currency=currency)
        if system_kind:
            system_account(kind=system_kind, currency=currency, system_code=system_code)
        rows = _load_wallet_rows(player, currency, system_kind or "", system_code)
    accounts, system, status, external_id = {}, None, None, None
    for account_id, owner_id, kind, allows_negative, owner_status, owner_external_id in rows:
        account = Account(
            id=account_id,
            owner_id=owner_id,
            currency_id=currency,
            kind=kind,
            system_code="" if owner_id else system_code,
            allows_negative=allows_negative,
        )
        if owner_id:
            accounts[kind] = account
            status, external_id = owner_status, owner_external_id
        else:
            system = account
    if active_only and status != Player.Status.ACTIVE:
        raise PlayerBlocked(f"Player {external_id} is {status}.", status=status)
    wallet = _Wallet(accounts=accounts, system=system)
    if _posts_in_one_statement():
        if len(_wallet_cache) >= _WALLET_CACHE_LIMIT:
            _wallet_cache.clear()
        _wallet_cache[cache_key] = wallet
    return wallet


def _player_blocked(player_id: int) -> PlayerBlocked:
    external_id, status = Player.objects.values_list("external_id", "status").get(pk=player_id)
    return PlayerBlocked(f"Player {external_id} is {status}.", status=status)


# --- the posting engine --------------------------------------------------------------------


def _fingerprint(request: dict) -> str:
    canonical = json.dumps(request, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _insufficient_funds(account: Account, amount: Decimal, available: Decimal):
    available = quantize_money(Decimal(str(available)), account.currency_id)
    return InsufficientFunds(
        f"{account.get_kind_display()} holds {available} {account.currency_id}; {-amount} needed.",
        balance=format_money(available, account.currency_id),
        currency=account.currency_id,
        required=format_money(-amount, account.currency_id),
    )


def _refusal(legs) -> InsufficientFunds:
    """After the balance CHECK refused an entry: which leg it was, with what is there now."""
    debits = [(a, amount) for a, amount in legs if not a.is_rolled_up and amount < 0]
    balances = dict(
        Account.objects.filter(pk__in=[a.pk for a, _ in debits]).values_list("pk", "balance")
    )
    account, amount = next(
        ((a, amount) for a, amount in debits if balances[a.pk] + amount < 0), debits[0]
    )
    return _insufficient_funds(account, amount, balances[account.pk])


def _move_checked_balance(account: Account, amount: Decimal) -> Decimal:
    """Add `amount` to a player account unless that would take it below zero.

    One conditional UPDATE both checks and writes, and takes the row lock for the rest of the
    transaction: there is no window between reading the balance and writing it.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Account._meta.db_table} SET balance = balance + %s "
            "WHERE id = %s AND balance + %s >= 0 RETURNING balance",
            [amount, account.pk, amount],
        )
        row = cursor.fetchone()
    if row is None:
        available = Account.objects.filter(pk=account.pk).values_list("balance", flat=True).get()
        raise _insufficient_funds(account, amount, available)
    # SQLite (demo only) hands numbers back as floats.
    return quantize_money(Decimal(str(row[0])), account.currency_id)


def _insert_statement_by_statement(entry: JournalEntry, legs) -> None:
    """Portable path (the SQLite demo). Call inside a transaction."""
    entry.save(force_insert=True)
    balances_after: dict[int, Decimal] = {}
    for index, (account, amount) in sorted(enumerate(legs), key=lambda leg: leg[1][0].pk):
        if not account.is_rolled_up:
            balances_after[index] = _move_checked_balance(account, amount)
    Posting.objects.bulk_create(
        [
            Posting(
                entry=entry, account=account, amount=amount, balance_after=balances_after.get(i)
            )
            for i, (account, amount) in enumerate(legs)
        ]
    )
    deltas = [BalanceDelta(account=a, amount=amount) for a, amount in legs if a.is_rolled_up]
    if deltas:
        BalanceDelta.objects.bulk_create(deltas)


def _execute_prepared(cursor, name: str, types: str, sql: str, params: list) -> None:
    """Run `sql` as a server-side prepared statement, prepared once per connection: the
    posting statement takes longer to plan than to run."""
    # `connection` is a proxy shared by all threads; the wrapper behind it is this thread's.
    wrapper = connections[DEFAULT_DB_ALIAS]
    prepared = wrapper.__dict__.setdefault("_ledger_prepared", {})
    if prepared.get(name) is not wrapper.connection:
        cursor.execute(f"PREPARE {name} ({types}) AS {sql}")
        prepared[name] = wrapper.connection
    cursor.execute(f"EXECUTE {name} ({', '.join(['%s'] * len(params))})", params)


# The whole entry in one statement: insert the entry, move the checked balances, insert the
# postings with the balances after, and queue the roll-up deltas. A checked balance that would
# go negative violates the account_balance_not_negative CHECK, which aborts the statement as a
# whole, so nothing of the entry is written. One statement is atomic on its own: outside a
# caller's transaction it needs no BEGIN and COMMIT round trips.
_POSTING_TYPES = (
    "text, text, text, text, jsonb, integer, bigint, timestamptz, bigint[], numeric[], bool[], "
    "bigint"
)
_POSTING_SQL = f"""
WITH entry AS (
    INSERT INTO {JournalEntry._meta.db_table}
        (kind, idempotency_key, request_hash, external_reference, metadata, actor_id,
         reverses_id, created_at)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8
    -- $12: the player who must be active for this entry (NULL: no such condition).
    WHERE $12 IS NULL
       OR EXISTS (SELECT 1 FROM {Player._meta.db_table} WHERE id = $12 AND status = 'active')
    RETURNING id
), legs AS (
    SELECT * FROM unnest($9, $10, $11)
        WITH ORDINALITY AS leg(account_id, amount, is_checked, position)
), moved AS (
    UPDATE {Account._meta.db_table} account SET balance = account.balance + leg.amount
    FROM legs leg CROSS JOIN entry
    WHERE account.id = leg.account_id AND leg.is_checked
    RETURNING account.id, account.balance
), postings AS (
    INSERT INTO {Posting._meta.db_table} (entry_id, account_id, amount, balance_after)
    SELECT entry.id, leg.account_id, leg.amount, moved.balance
    FROM entry CROSS JOIN legs leg LEFT JOIN moved ON moved.id = leg.account_id
    ORDER BY leg.position
), deltas AS (
    INSERT INTO {BalanceDelta._meta.db_table} (account_id, amount)
    SELECT leg.account_id, leg.amount FROM legs leg CROSS JOIN entry WHERE NOT leg.is_checked
)
SELECT id FROM entry
"""


def _insert_in_one_statement(entry: JournalEntry, legs, active_player_id: int | None) -> None:
    """PostgreSQL path. With more than one checked account, call inside a transaction.
    Writes nothing and raises PlayerBlocked if `active_player_id` is set and not active."""
    checked = sorted(account.pk for account, _ in legs if not account.is_rolled_up)
    with connection.cursor() as cursor:
        if len(checked) > 1:
            # The parts of one WITH statement run in no defined order, so lock the accounts
            # in id order first: two entries on the same accounts can never deadlock.
            cursor.execute(
                f"SELECT id FROM {Account._meta.db_table} WHERE id = ANY(%s) "
                "ORDER BY id FOR NO KEY UPDATE",
                [checked],
            )
        _execute_prepared(
            cursor,
            "ledger_post_entry",
            _POSTING_TYPES,
            _POSTING_SQL,
            [
                entry.kind,
                entry.idempotency_key,
                entry.request_hash,
                entry.external_reference,
                json.dumps(entry.metadata, cls=DjangoJSONEncoder),
                entry.actor_id,
                entry.reverses_id,
                entry.created_at,
                [account.pk for account, _ in legs],
                [amount for _, amount in legs],
                [not account.is_rolled_up for account, _ in legs],
                active_player_id,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        raise _player_blocked(active_player_id)
    (entry.pk,) = row
    entry._state.adding = False
    entry._state.db = connection.alias


def _require_active(player_id: int) -> None:
    """Portable path: the status, read inside the entry's transaction."""
    if not Player.objects.filter(pk=player_id, status=Player.Status.ACTIVE).exists():
        raise _player_blocked(player_id)


def _violated_constraint(exc: IntegrityError) -> str | None:
    return getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)


def post_entry(
    *,
    kind: str,
    legs: list[tuple[Account, Decimal]],
    idempotency_key: str,
    request: dict,
    external_reference: str = "",
    metadata: dict | None = None,
    actor=None,
    reverses: JournalEntry | None = None,
    active_player: Player | None = None,
) -> JournalEntry:
    """Write one balanced entry, or return the one already written under `idempotency_key`.

    `request` describes the caller's request; a replay whose request differs is refused with
    IdempotencyConflict. Legs on player accounts are checked (never below zero); legs on
    system accounts are rolled up later. With `active_player`, the entry is written only
    while that player is active (PlayerBlocked otherwise). Callable inside an outer
    transaction (it uses a savepoint there).
    """
    if not idempotency_key:
        raise MissingReason("An idempotency key is required.")
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for account, amount in legs:
        totals[account.currency_id] += amount
    if any(totals.values()):
        raise UnbalancedEntry(totals={c: str(t) for c, t in totals.items()})
    if len({account.pk for account, _ in legs}) != len(legs):
        raise UnbalancedEntry("An entry touches each account once.")

    entry = JournalEntry(
        kind=kind,
        idempotency_key=idempotency_key,
        request_hash=_fingerprint({"kind": kind, **request}),
        external_reference=external_reference,
        metadata=metadata or {},
        actor=actor,
        reverses=reverses,
        created_at=timezone.now(),
    )
    one_statement = _posts_in_one_statement()
    checked_legs = sum(not account.is_rolled_up for account, _ in legs)
    active_player_id = active_player.pk if active_player is not None else None
    try:
        if one_statement and checked_legs <= 1 and not connection.in_atomic_block:
            _insert_in_one_statement(entry, legs, active_player_id)
        else:
            with transaction.atomic():
                if one_statement:
                    _insert_in_one_statement(entry, legs, active_player_id)
                else:
                    if active_player_id is not None:
                        _require_active(active_player_id)
                    _insert_statement_by_statement(entry, legs)
    except IntegrityError as exc:
        if _violated_constraint(exc) == "account_balance_not_negative":
            raise _refusal(legs) from None
        # The key's unique index made us wait for the first request; it committed, so this
        # is a replay. Any other integrity failure is not ours to hide.
        existing = _replayed_or_none(idempotency_key, entry.request_hash)
        if existing is None:
            if reverses is not None:
                raise InvalidReversal(f"Entry {reverses.pk} has already been reversed.") from None
            raise
        return existing
    if one_statement:
        # Written by SQL, not save(): tell post_save receivers (compliance monitoring) as
        # save() would have.
        post_save.send(
            sender=JournalEntry,
            instance=entry,
            created=True,
            raw=False,
            using=entry._state.db,
            update_fields=None,
        )
    return entry


def _replayed_or_none(idempotency_key: str, request_hash: str) -> JournalEntry | None:
    existing = JournalEntry.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None and existing.request_hash != request_hash:
        raise IdempotencyConflict(
            f"Idempotency key {idempotency_key!r} was used for a different request.",
            idempotency_key=idempotency_key,
            entry_id=existing.pk,
        )
    return existing


def _simple_transfer(
    *,
    kind: str,
    player: Player,
    currency: str,
    amount,
    debit_kind: str,
    credit_kind: str,
    system_kind: str | None,
    system_code: str = "",
    active_only: bool,
    idempotency_key: str,
    external_reference: str = "",
    metadata: dict | None = None,
    actor=None,
) -> JournalEntry:
    """Move `amount` from the account of `debit_kind` to the one of `credit_kind`, where each
    is either a player account kind or the system account of `system_kind`."""
    amount = validate_amount(amount, currency)
    wallet = _wallet(
        player=player,
        currency=currency,
        system_kind=system_kind,
        system_code=system_code,
        active_only=active_only,
    )

    def account(kind_: str) -> Account:
        return wallet.system if kind_ == system_kind else wallet.accounts[kind_]

    return post_entry(
        kind=kind,
        legs=[(account(debit_kind), -amount), (account(credit_kind), amount)],
        idempotency_key=idempotency_key,
        request={
            "player": player.pk,
            "currency": currency,
            "amount": str(amount),
            "system": system_code,
            "reference": external_reference,
        },
        external_reference=external_reference,
        metadata=metadata,
        actor=actor,
        active_player=player if active_only else None,
    )


# --- money-moving services -----------------------------------------------------------------


def credit_deposit(
    *,
    player: Player,
    currency: str,
    amount,
    provider_code: str,
    idempotency_key: str,
    external_reference: str = "",
    metadata: dict | None = None,
) -> JournalEntry:
    """Credit the player's cash with money a payment provider collected (clearing → cash)."""
    return _simple_transfer(
        kind=EntryKind.DEPOSIT,
        player=player,
        currency=currency,
        amount=amount,
        debit_kind=Kind.PROVIDER_CLEARING,
        credit_kind=Kind.PLAYER_CASH,
        system_kind=Kind.PROVIDER_CLEARING,
        system_code=provider_code,
        active_only=True,
        idempotency_key=idempotency_key,
        external_reference=external_reference,
        metadata=metadata,
    )


def hold_withdrawal(
    *,
    player: Player,
    currency: str,
    amount,
    idempotency_key: str,
    external_reference: str = "",
    metadata: dict | None = None,
) -> JournalEntry:
    """Move money the player asked to withdraw from cash into the withdrawal hold."""
    return _simple_transfer(
        kind=EntryKind.WITHDRAWAL_HOLD,
        player=player,
        currency=currency,
        amount=amount,
        debit_kind=Kind.PLAYER_CASH,
        credit_kind=Kind.PLAYER_HOLD,
        system_kind=None,
        active_only=True,
        idempotency_key=idempotency_key,
        external_reference=external_reference,
        metadata=metadata,
    )


def release_hold(
    *,
    player: Player,
    currency: str,
    amount,
    idempotency_key: str,
    external_reference: str = "",
    metadata: dict | None = None,
) -> JournalEntry:
    """Give held money back to cash (withdrawal rejected, cancelled or failed)."""
    return _simple_transfer(
        kind=EntryKind.WITHDRAWAL_RELEASE,
        player=player,
        currency=currency,
        amount=amount,
        debit_kind=Kind.PLAYER_HOLD,
        credit_kind=Kind.PLAYER_CASH,
        system_kind=None,
        active_only=False,
        idempotency_key=idempotency_key,
        external_reference=external_reference,
        metadata=metadata,
    )


def settle_withdrawal(
    *,
    player: Player,
    currency: str,
    amount,
    provider_code: str,
    idempotency_key: str,
    external_reference: str = "",
    metadata: dict | None = None,
) -> JournalEntry:
    """The provider paid the player out: held money leaves to the provider's clearing account."""
    return _simple_transfer(
        kind=EntryKind.WITHDRAWAL_SETTLE,
        player=player,
        currency=currency,
        amount=amount,
        debit_kind=Kind.PLAYER_HOLD,
        credit_kind=Kind.PROVIDER_CLEARING,
        system_kind=Kind.PROVIDER_CLEARING,
        system_code=provider_code,
        active_only=False,
        idempotency_key=idempotency_key,
        external_reference=external_reference,
        metadata=metadata,
    )


def debit_bet(
    *,
    player: Player,
    currency: str,
    amount,
    idempotency_key: str,
    game_code: str = "",
    external_reference: str = "",
    metadata: dict | None = None,
) -> JournalEntry:
    """Take a stake from the player's cash into the game house account."""
    return _simple_transfer(
        kind=EntryKind.BET,
        player=player,
        currency=currency,
        amount=amount,
        debit_kind=Kind.PLAYER_CASH,
        credit_kind=Kind.GAME_HOUSE,
        system_kind=Kind.GAME_HOUSE,
        system_code=game_code,
        active_only=True,
        idempotency_key=idempotency_key,
        external_reference=external_reference,
        metadata=metadata,
    )


def credit_win(
    *,
    player: Player,
    currency: str,
    amount,
    idempotency_key: str,
    game_code: str = "",
    external_reference: str = "",
    metadata: dict | None = None,
) -> JournalEntry:
    """Pay a win from the game house to the player's cash. Paid to frozen players too:
    the money is owed."""
    return _simple_transfer(
        kind=EntryKind.WIN,
        player=player,
        currency=currency,
        amount=amount,
        debit_kind=Kind.GAME_HOUSE,
        credit_kind=Kind.PLAYER_CASH,
        system_kind=Kind.GAME_HOUSE,
        system_code=game_code,
        active_only=False,
        idempotency_key=idempotency_key,
        external_reference=external_reference,
        metadata=metadata,
    )


def reverse_bet(
    *, bet_entry: JournalEntry, idempotency_key: str, metadata: dict | None = None
) -> JournalEntry:
    """Undo a bet with a mirror entry; the bet itself is never edited. A bet is reversed once."""
    if bet_entry.kind != EntryKind.BET:
        raise InvalidReversal(f"Entry {bet_entry.pk} is a {bet_entry.kind}, not a bet.")
    request = {"reverses": bet_entry.pk}
    replay = _replayed_or_none(
        idempotency_key, _fingerprint({"kind": EntryKind.BET_REVERSAL, **request})
    )
    if replay is not None:
        return replay
    if JournalEntry.objects.filter(reverses=bet_entry).exists():
        raise InvalidReversal(f"Bet {bet_entry.pk} has already been reversed.")
    legs = [(p.account, -p.amount) for p in bet_entry.postings.select_related("account")]
    return post_entry(
        kind=EntryKind.BET_REVERSAL,
        legs=legs,
        idempotency_key=idempotency_key,
        request=request,
        external_reference=bet_entry.external_reference,
        metadata=metadata,
        reverses=bet_entry,
    )


def convert_currency(
    *,
    player: Player,
    from_currency: str,
    to_currency: str,
    amount,
    rate,
    idempotency_key: str,
    metadata: dict | None = None,
) -> JournalEntry:
    """Exchange between two of the player's own cash wallets at `rate` (to per from).

    Both legs are one entry through the FX account of each currency, so each currency still
    sums to zero. The bought amount is rounded down to its currency's minor unit: the
    player never receives a fraction the house does not have.
    """
    if from_currency == to_currency:
        raise UnknownCurrency("Conversion needs two different currencies.", currency=to_currency)
    amount = validate_amount(amount, from_currency)
    try:
        rate = Decimal(str(rate))
    except InvalidOperation:
        raise NonPositiveAmount(f"{rate!r} is not a rate.") from None
    if not rate.is_finite() or rate <= 0:
        raise NonPositiveAmount(f"Rate must be positive, got {rate}.")
    bought = (amount * rate).quantize(minor_unit(to_currency), ROUND_DOWN)
    if bought <= 0:
        raise NonPositiveAmount(f"{amount} {from_currency} buys nothing at {rate}.")
    sold_side = _wallet(
        player=player, currency=from_currency, system_kind=Kind.FX, active_only=True
    )
    bought_side = _wallet(
        player=player, currency=to_currency, system_kind=Kind.FX, active_only=True
    )
    return post_entry(
        kind=EntryKind.FX_CONVERSION,
        legs=[
            (sold_side.accounts[Kind.PLAYER_CASH], -amount),
            (sold_side.system, amount),
            (bought_side.system, -bought),
            (bought_side.accounts[Kind.PLAYER_CASH], bought),
        ],
        idempotency_key=idempotency_key,
        request={
            "player": player.pk,
            "from": from_currency,
            "to": to_currency,
            "amount": str(amount),
            "rate": str(rate),
        },
        metadata={
            "rate": str(rate),
            "sold": str(amount),
            "bought": str(bought),
            **(metadata or {}),
        },
        active_player=player,
    )


def adjust_balance(
    *,
    player: Player,
    currency: str,
    amount,
    reason: str,
    actor,
    idempotency_key: str,
    account_kind: str = Kind.PLAYER_CASH,
) -> JournalEntry:
    """An operator's correction: a signed amount on a player account against the manual
    adjustment account. Needs a reason and an actor; can never take a player below zero."""
    if not reason or not reason.strip() or actor is None:
        raise MissingReason("A manual adjustment needs a reason and an actor.")
    if account_kind not in Account.PLAYER_KINDS:
        raise MissingReason(f"{account_kind} is not a player account kind.")
    amount = validate_amount(amount, currency, allow_negative=True)
    wallet = _wallet(
        player=player, currency=currency, system_kind=Kind.MANUAL_ADJUSTMENT, active_only=False
    )
    return post_entry(
        kind=EntryKind.MANUAL_ADJUSTMENT,
        legs=[(wallet.accounts[account_kind], amount), (wallet.system, -amount)],
        idempotency_key=idempotency_key,
        request={
            "player": player.pk,
            "currency": currency,
            "amount": str(amount),
            "account": account_kind,
            "reason": reason,
        },
        metadata={"reason": reason},
        actor=actor,
    )


# --- housekeeping --------------------------------------------------------------------------


def roll_up_system_balances(*, batch_size: int = 10_000) -> int:
    """Fold pending system-account deltas into their balances; return how many were folded.

    Only committed deltas are visible, and each one is deleted in the same transaction that
    adds it to the balance, so a delta is counted exactly once even with entries being
    written meanwhile or two roll-ups running at once (the second skips locked rows).
    """
    with transaction.atomic():
        pending = list(
            BalanceDelta.objects.select_for_update(skip_locked=True)
            .order_by("id")
            .values_list("id", "account_id", "amount")[:batch_size]
        )
        if not pending:
            return 0
        sums: dict[int, Decimal] = defaultdict(Decimal)
        for _, account_id, amount in pending:
            sums[account_id] += amount
        for account_id in sorted(sums):
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {Account._meta.db_table} SET balance = balance + %s WHERE id = %s",
                    [sums[account_id], account_id],
                )
        BalanceDelta.objects.filter(id__in=[row[0] for row in pending]).delete()
    return len(pending)
