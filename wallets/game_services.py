"""The seamless game wallet: what a game provider's balance, bet, win and rollback calls do.

Each call is one database transaction that takes its locks in one order:
  the round row → the player's cash and bonus accounts (id order) → bonus rows
then posts at most one journal entry (via `services.post_entry`, key
`game:<provider code>:<transaction id>`) and writes one `GameTransaction` row, unique per
(provider, transaction id). A retry finds that row and gets the stored answer, balance after
included; the same id with another request is a duplicate. Bonus flows lock accounts before
the bonus row too, and payments locks the cash account first, so there is no lock cycle.

Bets spend cash and bonus money in the order of BONUS_SPEND_ORDER; wins and rollbacks give
the bonus share back to the bonus while it is active, to cash once it converted, and to the
bonus expense account once it was forfeited. The game house account of the provider
(system code = provider code) is on the other side and is never locked (rolled up).
"""

import functools
import hashlib
import hmac
import json
import secrets
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from cryptography.fernet import InvalidToken, MultiFernet
from django.conf import settings
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from . import bonus_services, money, secret_box, services
from .bonus_services import LockedWallet, MaxBetExceeded
from .errors import (
    AmountOutOfRange,
    BadPrecision,
    DomainError,
    IdempotencyConflict,
    InsufficientFunds,
    NonPositiveAmount,
    PlayerBlocked,
    UnknownCurrency,
)
from .models import Account, Bonus, GameProvider, GameRound, GameTransaction, JournalEntry, Player
from .signals import bet_requested

Kind = Account.Kind
TxKind = GameTransaction.Kind
TxStatus = GameTransaction.Status
Outcome = GameTransaction.RollbackOutcome

# --- the error contract of the game-wallet API (codes are public: never rename one) ----------


class InvalidSignature(DomainError):
    """Unknown key, bad signature, or a timestamp outside the allowed window."""

    code = "invalid_signature"
    http_status = 401


class ProviderDisabled(DomainError):
    """The game provider is disabled by the operator."""

    code = "provider_disabled"
    http_status = 403


class GameBadRequest(DomainError):
    """The request is malformed or its amount is not valid for the currency."""

    code = "bad_request"
    http_status = 400


class PlayerNotFound(DomainError):
    """No player with this id."""

    code = "player_not_found"
    http_status = 404


class CurrencyMismatch(DomainError):
    """The currency is not enabled for this provider, or differs from the round's currency."""

    code = "currency_mismatch"
    http_status = 409


class SessionInvalid(DomainError):
    """The game session token is missing, expired, or not this player's (bets only)."""

    code = "session_invalid"
    http_status = 403


class DuplicateTransaction(DomainError):
    """This transaction id was already used with a different request."""

    code = "duplicate_transaction"
    http_status = 409


class TransactionNotFound(DomainError):
    """The round or bet this call refers to does not exist (or was rolled back)."""

    code = "transaction_not_found"
    http_status = 404


class TransactionRolledBack(DomainError):
    """A rollback for this bet arrived first; the bet is refused and moves nothing."""

    code = "transaction_rolled_back"
    http_status = 409


class RoundClosed(DomainError):
    """The round is closed; it takes no more bets or wins."""

    code = "round_closed"
    http_status = 409


class BetSettled(DomainError):
    """The bet's round already has a win; the bet can no longer be rolled back."""

    code = "bet_settled"
    http_status = 409


# --- providers and their secrets -------------------------------------------------------------


def _cipher() -> MultiFernet:
    # The one rotatable cipher every stored provider secret uses (wallets/secret_box.py).
    return secret_box.cipher()


def _store_secret(provider: GameProvider) -> str:
    secret = secrets.token_urlsafe(32)
    provider.secret_ciphertext = _cipher().encrypt(secret.encode()).decode()
    provider.secret_hint = f"…{secret[-4:]}"
    provider.secret_rotated_at = timezone.now()
    return secret


def create_provider(
    *, name: str, code: str, currencies: list[str], is_enabled: bool = True
) -> tuple[GameProvider, str]:
    """Register a game provider with a server-generated key id and secret. Returns the
    provider and the secret in clear: the only time it is ever shown."""
    for currency in currencies:
        money.currency_exponent(currency)
    provider = GameProvider(
        name=name, code=code, key_id=secrets.token_hex(12), is_enabled=is_enabled
    )
    secret = _store_secret(provider)
    with transaction.atomic():
        provider.save()
        provider.currencies.set(currencies)
    return provider, secret


def rotate_provider_secret(*, provider: GameProvider) -> str:
    """Replace the provider's secret; the old one stops working at once. Returns the new one."""
    secret = _store_secret(provider)
    provider.save(update_fields=["secret_ciphertext", "secret_hint", "secret_rotated_at"])
    return secret


def provider_secret(provider: GameProvider) -> str:
    return _decrypted(provider.secret_ciphertext, _cipher())


# Keyed by the ciphertext (and cipher): a rotated secret is a new ciphertext, so the old one
# is never served from here once the row changed. Decrypting is an AES + HMAC per call.
@functools.lru_cache(maxsize=256)
def _decrypted(ciphertext: str, cipher: MultiFernet) -> str:
    try:
        return cipher.decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise InvalidSignature("The provider's secret cannot be decrypted.") from None


def signature_for(*, secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `<timestamp>.<raw body>`, hex: binding the timestamp into the MAC
    stops a captured call from being replayed later with a fresh timestamp."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


_PROVIDER_FIELDS = [f.attname for f in GameProvider._meta.concrete_fields]
_PROVIDER_CURRENCIES = GameProvider._meta.get_field("currencies")
# The provider row and its currency codes in one statement (PostgreSQL).
_PROVIDER_SQL = f"""
SELECT {", ".join(f"gp.{f.column}" for f in GameProvider._meta.concrete_fields)},
       COALESCE(array_agg(c.{_PROVIDER_CURRENCIES.m2m_reverse_name()})
                FILTER (WHERE c.{_PROVIDER_CURRENCIES.m2m_reverse_name()} IS NOT NULL), '{{}}')
FROM {GameProvider._meta.db_table} gp
LEFT JOIN {_PROVIDER_CURRENCIES.m2m_db_table()} c
    ON c.{_PROVIDER_CURRENCIES.m2m_column_name()} = gp.id
WHERE gp.key_id = %s
GROUP BY gp.id
"""


def _provider_by_key(key_id: str) -> GameProvider | None:
    """Read on every call, never cached: a rotated secret or a disabled provider takes effect
    at once in every worker process."""
    if connection.vendor != "postgresql":
        return GameProvider.objects.prefetch_related("currencies").filter(key_id=key_id).first()
    with connection.cursor() as cursor:
        cursor.execute(_PROVIDER_SQL, [key_id])
        row = cursor.fetchone()
    if row is None:
        return None
    provider = GameProvider.from_db(connection.alias, _PROVIDER_FIELDS, row[:-1])
    provider.currency_codes = row[-1]
    return provider


def authenticate_provider(
    *, key_id: str, timestamp: str, signature: str, body: bytes
) -> GameProvider:
    """The provider that signed `body`, or InvalidSignature / ProviderDisabled."""
    if not (key_id and timestamp and signature):
        raise InvalidSignature("X-Game-Key, X-Game-Timestamp and X-Game-Signature are required.")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise InvalidSignature("X-Game-Timestamp must be Unix seconds.") from None
    skew = abs(timezone.now().timestamp() - sent_at)
    if skew > settings.GAME_WALLET_SIGNATURE_TOLERANCE_SECONDS:
        raise InvalidSignature("The timestamp is outside the allowed window.", skew=int(skew))
    provider = _provider_by_key(key_id)
    if provider is None:
        raise InvalidSignature("Unknown key.")
    expected = signature_for(secret=provider_secret(provider), timestamp=timestamp, body=body)
    if not hmac.compare_digest(expected, signature.lower()):
        raise InvalidSignature("The signature does not match the body.")
    if not provider.is_enabled:
        raise ProviderDisabled(provider=provider.code)
    return provider


# --- game sessions ------------------------------------------------------------------------------

_SESSION_SALT = "wallets.game-session"


def issue_game_session(*, player: Player, provider: GameProvider, currency: str) -> str:
    """A signed token the casino hands the provider when the player launches a game; bets
    must carry it until GAME_SESSION_TTL_SECONDS pass. Wins and rollbacks never need it:
    money owed is paid after the session ends."""
    _check_currency(provider, currency)
    payload = {"player": player.pk, "provider": provider.pk, "currency": currency}
    return signing.dumps(payload, salt=_SESSION_SALT, compress=True)


def _check_session(token: str, *, player: Player, provider: GameProvider, currency: str) -> None:
    try:
        payload = signing.loads(
            token or "", salt=_SESSION_SALT, max_age=settings.GAME_SESSION_TTL_SECONDS
        )
    except signing.SignatureExpired:
        raise SessionInvalid("The game session has ended.") from None
    except signing.BadSignature:
        raise SessionInvalid("The game session token is not valid.") from None
    if payload != {"player": player.pk, "provider": provider.pk, "currency": currency}:
        raise SessionInvalid("The game session belongs to another player, game or currency.")


# --- shared pieces -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GameOutcome:
    transaction: GameTransaction
    is_replay: bool


@dataclass(frozen=True)
class WalletBalance:
    player_id: str
    currency: str
    cash: Decimal
    bonus: Decimal

    @property
    def balance(self) -> Decimal:
        return self.cash + self.bonus


def _check_currency(provider: GameProvider, currency: str) -> None:
    try:
        money.currency_exponent(currency)
    except UnknownCurrency:
        raise CurrencyMismatch(f"Unknown currency {currency!r}.", currency=currency) from None
    if currency not in _currency_codes(provider):
        raise CurrencyMismatch(f"{currency} is not enabled for {provider.code}.", currency=currency)


def _currency_codes(provider: GameProvider) -> set[str]:
    """The provider's currencies: from `authenticate_provider`'s query when it loaded the
    provider, otherwise from the relation (prefetched by the callers that have it)."""
    codes = getattr(provider, "currency_codes", None)
    if codes is None:
        codes = [c.code for c in provider.currencies.all()]
    return set(codes)


# NUMERIC(28, 8) holds 20 integer digits; far below that, no real stake or win is this big.
MAX_AMOUNT = Decimal(10) ** 15


def _amount(amount, currency: str, *, allow_zero: bool = False) -> Decimal:
    try:
        if allow_zero and Decimal(str(amount)) == 0:
            return money.quantize_money(Decimal(0), currency)
        value = money.validate_amount(amount, currency)
    except InvalidOperation:
        raise GameBadRequest(f"{amount!r} is not an amount.") from None
    except (AmountOutOfRange, BadPrecision, NonPositiveAmount) as exc:
        raise GameBadRequest(exc.message, **exc.details) from None
    if value >= MAX_AMOUNT:
        raise GameBadRequest(f"{amount} is larger than any stake or win.", amount=str(amount))
    return value


def _request_hash(**request) -> str:
    canonical = json.dumps(request, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _player(player_id: str) -> Player:
    return _found(Player.objects.filter(external_id=player_id).first(), player_id)


def _found(player: Player | None, player_id: str) -> Player:
    if player is None:
        raise PlayerNotFound(f"No player {player_id!r}.", player_id=player_id)
    return player


_RECORDED = ("pk", "status", "request_hash", "kind")


def _recorded(provider: GameProvider, transaction_id: str):
    return GameTransaction.objects.filter(
        provider=provider, transaction_id=transaction_id
    ).order_by()


# The player's status is read later, with the wallet lock; the rest of the row is deferred.
_PLAYER_FIELDS = ["id", "external_id"]
# One round trip before every call: the player and whatever this transaction id already
# recorded. The one-row FROM keeps the answer a row even when neither exists.
_PLAYER_OR_REPLAY_SQL = f"""
SELECT p.id, p.external_id, t.id, t.status, t.request_hash, t.kind
FROM (SELECT 1) AS one
LEFT JOIN {Player._meta.db_table} p ON p.external_id = %s
LEFT JOIN {GameTransaction._meta.db_table} t ON t.provider_id = %s AND t.transaction_id = %s
"""


def _player_or_replay(
    *, player_id: str, provider: GameProvider, transaction_id: str, kind: str, request_hash: str
) -> tuple[Player | None, GameOutcome | None]:
    """The player (None if unknown), and the stored answer if this transaction id was already
    processed (see `_replay`), read in one query: this runs before every call."""
    with connection.cursor() as cursor:
        cursor.execute(_PLAYER_OR_REPLAY_SQL, [player_id, provider.pk, transaction_id])
        row = cursor.fetchone()
    player_row, found = row[: len(_PLAYER_FIELDS)], row[len(_PLAYER_FIELDS) :]
    player = None
    if player_row[0] is not None:
        player = Player.from_db(connection.alias, _PLAYER_FIELDS, player_row)
    if found[0] is None:
        return player, None
    return player, _replayed(
        found, transaction_id=transaction_id, kind=kind, request_hash=request_hash
    )


def _replay(
    *, provider: GameProvider, transaction_id: str, kind: str, request_hash: str
) -> GameOutcome | None:
    """The stored answer if this transaction id was already processed, a duplicate or
    rolled-back refusal if it was used otherwise, None if it is new."""
    found = _recorded(provider, transaction_id).values_list(*_RECORDED)[:1]
    if not found:
        return None
    return _replayed(found[0], transaction_id=transaction_id, kind=kind, request_hash=request_hash)


def _replayed(found, *, transaction_id: str, kind: str, request_hash: str) -> GameOutcome:
    pk, status, stored_hash, stored_kind = found
    if status == TxStatus.TOMBSTONE and kind == TxKind.BET:
        raise TransactionRolledBack(
            f"Bet {transaction_id} was rolled back before it arrived.",
            transaction_id=transaction_id,
        )
    if stored_hash != request_hash:
        raise DuplicateTransaction(
            f"Transaction {transaction_id} was already used for another request.",
            transaction_id=transaction_id,
            original_kind=stored_kind,
        )
    done = GameTransaction.objects.select_related("round", "player").get(pk=pk)
    return GameOutcome(done, is_replay=True)


_ROUND_COLUMNS = [f.column for f in GameRound._meta.concrete_fields]
# Creates the round or, if it exists, locks it, in one statement: the no-op DO UPDATE takes the
# same row lock as SELECT ... FOR NO KEY UPDATE (no key column changes) and returns the row as
# it is after any concurrent writer committed, like the lock would.
_UPSERT_ROUND_SQL = f"""
INSERT INTO {GameRound._meta.db_table}
    (provider_id, round_id, player_id, currency_id, game_id, status, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (provider_id, round_id) DO UPDATE SET status = {GameRound._meta.db_table}.status
RETURNING {", ".join(_ROUND_COLUMNS)}
"""


def _upsert_locked_round(
    *, provider: GameProvider, round_id: str, player: Player, currency: str, game_id: str
) -> GameRound:
    params = [provider.pk, round_id, player.pk, currency, game_id, GameRound.Status.OPEN]
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT_ROUND_SQL, [*params, timezone.now()])
        row = cursor.fetchone()
    names = [f.attname for f in GameRound._meta.concrete_fields]
    return GameRound.from_db(connection.alias, names, row)


def _locked_round(
    *,
    provider: GameProvider,
    round_id: str,
    player: Player,
    currency: str,
    game_id: str = "",
    create: bool,
) -> GameRound:
    if create and connection.vendor == "postgresql":
        game_round = _upsert_locked_round(
            provider=provider, round_id=round_id, player=player, currency=currency, game_id=game_id
        )
    else:
        if create:
            GameRound.objects.bulk_create(
                [
                    GameRound(
                        provider=provider,
                        round_id=round_id,
                        player=player,
                        currency_id=currency,
                        game_id=game_id,
                    )
                ],
                ignore_conflicts=True,
            )
        game_round = (
            GameRound.objects.select_for_update(no_key=True)
            .filter(provider=provider, round_id=round_id)
            .first()
        )
    if game_round is None:
        raise TransactionNotFound(f"Round {round_id} is unknown.", round_id=round_id)
    if game_round.player_id != player.pk:
        raise GameBadRequest(f"Round {round_id} belongs to another player.", round_id=round_id)
    if game_round.currency_id != currency:
        raise CurrencyMismatch(
            f"Round {round_id} is in {game_round.currency_id}.",
            currency=currency,
            round_currency=game_round.currency_id,
        )
    return game_round


# Accounts are never deleted and a system account is never locked (its balance is rolled up),
# so once its row is committed its id is all a leg needs: remember it per process. Only after
# the commit: an account created by a transaction that then rolled back never existed.
_houses: dict[tuple, Account] = {}


def _house(provider: GameProvider, currency: str) -> Account:
    key = (connection.settings_dict["NAME"], provider.pk, provider.code, currency)
    house = _houses.get(key)
    if house is None:
        house = services.system_account(
            kind=Kind.GAME_HOUSE, currency=currency, system_code=provider.code
        )
        transaction.on_commit(lambda: _houses.setdefault(key, house))
    return house


def _post(*, wallet: LockedWallet, legs: list[tuple[Account, Decimal]], **entry) -> JournalEntry:
    """Post through the ledger, then keep the locked wallet's balances exact in memory."""
    legs = [(account, amount) for account, amount in legs if amount]
    posted = services.post_entry(legs=legs, **entry)
    for account, amount in legs:
        if account is wallet.cash or account is wallet.bonus:
            account.balance += amount
    return posted


def _bonus_destination(bonus: Bonus, wallet: LockedWallet, currency: str) -> Account:
    """Where money that came from `bonus` goes back to."""
    if bonus.is_active:
        return wallet.bonus
    if bonus.status == Bonus.Status.CONVERTED:
        return wallet.cash
    return bonus_services.bonus_expense_account(currency)


def _legs(*pairs: tuple[Account, Decimal]) -> list[tuple[Account, Decimal]]:
    """Sum the amounts per account: one leg per account in an entry."""
    by_account: dict[int, list] = {}
    for account, amount in pairs:
        by_account.setdefault(account.pk, [account, Decimal(0)])[1] += amount
    return [(account, amount) for account, amount in by_account.values()]


def _finish(*, wallet: LockedWallet, **fields) -> GameOutcome:
    played = GameTransaction.objects.create(
        cash_after=wallet.cash.balance, bonus_after=wallet.bonus.balance, **fields
    )
    return GameOutcome(played, is_replay=False)


def _settle_race(exc: Exception, **lookup) -> GameOutcome:
    """Another request with this transaction id committed while we worked: answer as a retry
    of it (or as a duplicate), never as a second movement."""
    replay = _replay(**lookup)
    if replay is None:
        raise exc
    return replay


# --- the four calls ----------------------------------------------------------------------------


def wallet_balance(*, provider: GameProvider, player_id: str, currency: str) -> WalletBalance:
    _check_currency(provider, currency)
    player = _player(player_id)
    amounts = dict(
        Account.objects.filter(
            owner=player, currency_id=currency, kind__in=[Kind.PLAYER_CASH, Kind.PLAYER_BONUS]
        ).values_list("kind", "balance")
    )
    zero = Decimal(0)
    return WalletBalance(
        player_id=player.external_id,
        currency=currency,
        cash=money.quantize_money(amounts.get(Kind.PLAYER_CASH, zero), currency),
        bonus=money.quantize_money(amounts.get(Kind.PLAYER_BONUS, zero), currency),
    )


def _split_stake(amount: Decimal, cash: Decimal, bonus: Decimal) -> tuple[Decimal, Decimal]:
    if settings.BONUS_SPEND_ORDER not in ("cash_first", "bonus_first"):
        raise ImproperlyConfigured("BONUS_SPEND_ORDER must be cash_first or bonus_first.")
    if settings.BONUS_SPEND_ORDER == "bonus_first":
        from_bonus = min(amount, bonus)
        return amount - from_bonus, from_bonus
    from_cash = min(amount, cash)
    return from_cash, amount - from_cash


def place_bet(
    *,
    provider: GameProvider,
    player_id: str,
    currency: str,
    amount,
    transaction_id: str,
    round_id: str,
    session_token: str,
    game_id: str = "",
) -> GameOutcome:
    """Take a stake from the player: cash and bonus in BONUS_SPEND_ORDER, into the provider's
    game house account. Refused for blocked or self-excluded players (the `bet_requested`
    signal), closed rounds, expired sessions, bets over the bonus max bet, and when cash plus
    bonus do not cover it; a refusal writes nothing."""
    _check_currency(provider, currency)
    amount = _amount(amount, currency)
    request_hash = _request_hash(
        kind=TxKind.BET, player=player_id, round=round_id, currency=currency, amount=str(amount)
    )
    lookup = {
        "provider": provider,
        "transaction_id": transaction_id,
        "kind": TxKind.BET,
        "request_hash": request_hash,
    }
    player, replay = _player_or_replay(player_id=player_id, **lookup)
    if replay is not None:
        return replay
    player = _found(player, player_id)
    _check_session(session_token, player=player, provider=provider, currency=currency)
    try:
        with transaction.atomic():
            game_round = _locked_round(
                provider=provider,
                round_id=round_id,
                player=player,
                currency=currency,
                game_id=game_id,
                create=True,
            )
            if replay := _replay(**lookup):
                return replay
            if game_round.status == GameRound.Status.CLOSED:
                raise RoundClosed(f"Round {round_id} is closed.", round_id=round_id)
            wallet = bonus_services.lock_wallet(player=player, currency=currency)
            if not wallet.player.is_active:
                raise PlayerBlocked(
                    f"Player {player_id} is {wallet.player.status}.", status=wallet.player.status
                )
            bonus = bonus_services.active_bonus_for_play(wallet=wallet, currency=currency)
            if bonus is not None and bonus.max_bet is not None and amount > bonus.max_bet:
                max_bet = money.quantize_money(bonus.max_bet, currency)
                raise MaxBetExceeded(
                    f"The active bonus allows bets up to {max_bet} {currency}.",
                    max_bet=str(max_bet),
                )
            _ask_compliance(
                player=wallet.player,
                currency=currency,
                amount=amount,
                provider=provider,
                transaction_id=transaction_id,
            )
            spendable_bonus = wallet.bonus.balance if bonus is not None else Decimal(0)
            if wallet.cash.balance + spendable_bonus < amount:
                playable = money.quantize_money(wallet.cash.balance + spendable_bonus, currency)
                raise InsufficientFunds(
                    f"Cash and bonus hold {playable} {currency}; {amount} needed.",
                    required=str(amount),
                )
            from_cash, from_bonus = _split_stake(amount, wallet.cash.balance, spendable_bonus)
            entry = _post(
                wallet=wallet,
                kind=JournalEntry.Kind.BET,
                legs=[
                    (wallet.cash, -from_cash),
                    (wallet.bonus, -from_bonus),
                    (_house(provider, currency), amount),
                ],
                idempotency_key=f"game:{provider.code}:{transaction_id}",
                request={"game": request_hash},
                external_reference=f"{provider.code}:{transaction_id}",
                metadata={"provider": provider.code, "round": round_id, "game": game_id},
            )
            if bonus is not None:
                bonus_services.add_wagering(bonus=bonus, wallet=wallet, amount=amount)
            return _finish(
                wallet=wallet,
                provider=provider,
                transaction_id=transaction_id,
                kind=TxKind.BET,
                round=game_round,
                player=player,
                currency_id=currency,
                amount=amount,
                cash_amount=from_cash,
                bonus_amount=from_bonus,
                bonus=bonus,
                wagered_amount=amount if bonus is not None else 0,
                entry=entry,
                request_hash=request_hash,
            )
    except (IntegrityError, IdempotencyConflict) as exc:
        return _settle_race(exc, **lookup)


def _ask_compliance(*, player, currency, amount, provider, transaction_id) -> None:
    """Higher apps (compliance) veto bets through the signal; any refusal is `player_blocked`
    to the provider, with the refusing rule's own code in `details.refused_by`."""
    try:
        bet_requested.send(
            sender=GameTransaction,
            player=player,
            currency=currency,
            amount=amount,
            provider=provider.code,
            transaction_id=transaction_id,
        )
    except PlayerBlocked:
        raise
    except DomainError as exc:
        raise PlayerBlocked(exc.message, refused_by=exc.code, **exc.details) from exc


def settle_win(
    *,
    provider: GameProvider,
    player_id: str,
    currency: str,
    amount,
    transaction_id: str,
    round_id: str,
    bet_transaction_id: str = "",
    closes_round: bool = False,
) -> GameOutcome:
    """Pay a win (zero allowed) into a round with a standing bet, split between cash and bonus
    as the round's stakes were. Paid to frozen players and after the session ended."""
    _check_currency(provider, currency)
    amount = _amount(amount, currency, allow_zero=True)
    request_hash = _request_hash(
        kind=TxKind.WIN,
        player=player_id,
        round=round_id,
        currency=currency,
        amount=str(amount),
        bet=bet_transaction_id,
        closes=closes_round,
    )
    lookup = {
        "provider": provider,
        "transaction_id": transaction_id,
        "kind": TxKind.WIN,
        "request_hash": request_hash,
    }
    player, replay = _player_or_replay(player_id=player_id, **lookup)
    if replay is not None:
        return replay
    player = _found(player, player_id)
    try:
        with transaction.atomic():
            game_round = _locked_round(
                provider=provider, round_id=round_id, player=player, currency=currency, create=False
            )
            # The retry check and the round's standing bets in one read, under the round lock.
            rows = list(
                GameTransaction.objects.filter(
                    Q(provider=provider, transaction_id=transaction_id)
                    | Q(round=game_round, kind=TxKind.BET, status=TxStatus.ACCEPTED)
                )
            )
            standing = [row for row in rows if row.transaction_id != transaction_id]
            if len(standing) < len(rows):
                recorded = next(row for row in rows if row.transaction_id == transaction_id)
                found = [getattr(recorded, field) for field in _RECORDED]
                return _replayed(
                    found, transaction_id=transaction_id, kind=TxKind.WIN, request_hash=request_hash
                )
            if game_round.status == GameRound.Status.CLOSED:
                raise RoundClosed(f"Round {round_id} is closed.", round_id=round_id)
            if bet_transaction_id:
                standing = [b for b in standing if b.transaction_id == bet_transaction_id]
                if not standing:
                    raise TransactionNotFound(
                        f"No standing bet {bet_transaction_id} in round {round_id}.",
                        bet_transaction_id=bet_transaction_id,
                    )
            if amount > 0 and not standing:
                raise TransactionNotFound(
                    f"Round {round_id} has no standing bet to pay.", round_id=round_id
                )
            wallet = bonus_services.lock_wallet(player=player, currency=currency)
            to_cash, to_bonus, forfeited, legs = _win_legs(
                amount=amount, standing=standing, wallet=wallet, currency=currency
            )
            entry = None
            if amount > 0:
                entry = _post(
                    wallet=wallet,
                    kind=JournalEntry.Kind.WIN,
                    legs=_legs((_house(provider, currency), -amount), *legs),
                    idempotency_key=f"game:{provider.code}:{transaction_id}",
                    request={"game": request_hash},
                    external_reference=f"{provider.code}:{transaction_id}",
                    metadata={"provider": provider.code, "round": round_id},
                )
            if closes_round:
                game_round.status = GameRound.Status.CLOSED
                game_round.closed_at = timezone.now()
                game_round.save(update_fields=["status", "closed_at"])
            return _finish(
                wallet=wallet,
                provider=provider,
                transaction_id=transaction_id,
                kind=TxKind.WIN,
                round=game_round,
                player=player,
                currency_id=currency,
                amount=amount,
                cash_amount=to_cash,
                bonus_amount=to_bonus,
                forfeited_amount=forfeited,
                reference_transaction_id=bet_transaction_id,
                closes_round=closes_round,
                entry=entry,
                request_hash=request_hash,
            )
    except (IntegrityError, IdempotencyConflict) as exc:
        return _settle_race(exc, **lookup)


def _win_legs(*, amount: Decimal, standing: list[GameTransaction], wallet, currency: str):
    """Split a win in proportion to how the standing stakes were split between cash and each
    bonus; a bonus share is rounded down, the rounding remainder goes to cash."""
    total_stake = sum((bet.amount for bet in standing), Decimal(0))
    bonus_stakes: dict[int, Decimal] = defaultdict(Decimal)
    for bet in standing:
        if bet.bonus_amount:
            bonus_stakes[bet.bonus_id] += bet.bonus_amount
    minor = money.minor_unit(currency)
    bonuses = bonus_services.lock_bonuses(bonus_stakes)
    shares = {
        bonus_id: (amount * stake / total_stake).quantize(minor, ROUND_DOWN)
        for bonus_id, stake in bonus_stakes.items()
    }
    legs = [(wallet.cash, amount - sum(shares.values(), Decimal(0)))]
    legs += [
        (_bonus_destination(bonuses[bonus_id], wallet, currency), share)
        for bonus_id, share in shares.items()
    ]
    return _totals(legs, wallet)


def _totals(legs, wallet: LockedWallet):
    to_cash = sum((a for acc, a in legs if acc is wallet.cash), Decimal(0))
    to_bonus = sum((a for acc, a in legs if acc is wallet.bonus), Decimal(0))
    forfeited = sum((a for acc, a in legs if acc.owner_id is None), Decimal(0))
    return to_cash, to_bonus, forfeited, legs


def rollback_bet(
    *,
    provider: GameProvider,
    player_id: str,
    currency: str,
    transaction_id: str,
    round_id: str,
    bet_transaction_id: str,
) -> GameOutcome:
    """Cancel a bet by its transaction id: the stake goes back where it came from (the bonus
    share to cash if that bonus converted meanwhile, to bonus expense if it was forfeited),
    and it no longer counts towards wagering. A bet never seen is recorded as a tombstone,
    so when it arrives it is refused; a bet already rolled back is answered as success and
    moves nothing; a bet whose round has a win is refused (`bet_settled`)."""
    _check_currency(provider, currency)
    request_hash = _request_hash(
        kind=TxKind.ROLLBACK,
        player=player_id,
        round=round_id,
        currency=currency,
        bet=bet_transaction_id,
    )
    lookup = {
        "provider": provider,
        "transaction_id": transaction_id,
        "kind": TxKind.ROLLBACK,
        "request_hash": request_hash,
    }
    player, replay = _player_or_replay(player_id=player_id, **lookup)
    if replay is not None:
        return replay
    if bet_transaction_id == transaction_id:
        raise GameBadRequest("A rollback needs its own transaction id.")
    player = _found(player, player_id)
    try:
        with transaction.atomic():
            game_round = _locked_round(
                provider=provider, round_id=round_id, player=player, currency=currency, create=True
            )
            if replay := _replay(**lookup):
                return replay
            bet = GameTransaction.objects.filter(
                provider=provider, transaction_id=bet_transaction_id
            ).first()
            if bet is not None and (bet.kind != TxKind.BET or bet.round_id != game_round.pk):
                raise TransactionNotFound(
                    f"No bet {bet_transaction_id} in round {round_id}.",
                    bet_transaction_id=bet_transaction_id,
                )
            wallet = bonus_services.lock_wallet(player=player, currency=currency)
            entry, amount, legs = None, None, []
            if bet is None:
                outcome = Outcome.BET_NOT_FOUND
                GameTransaction.objects.create(
                    provider=provider,
                    transaction_id=bet_transaction_id,
                    kind=TxKind.BET,
                    status=TxStatus.TOMBSTONE,
                    round=game_round,
                    player=player,
                    currency_id=currency,
                    reference_transaction_id=transaction_id,
                    request_hash="",
                )
            elif bet.status != TxStatus.ACCEPTED:
                outcome = Outcome.ALREADY_ROLLED_BACK
            elif game_round.transactions.filter(kind=TxKind.WIN).exists():
                raise BetSettled(
                    f"Round {round_id} already has a win.", bet_transaction_id=bet_transaction_id
                )
            else:
                outcome = Outcome.ROLLED_BACK
                amount = bet.amount
                legs = [(wallet.cash, bet.cash_amount)]
                if bet.bonus_id:
                    bonus = bonus_services.lock_bonuses([bet.bonus_id])[bet.bonus_id]
                    if bet.bonus_amount:
                        legs.append((_bonus_destination(bonus, wallet, currency), bet.bonus_amount))
                    if bonus.is_active and bet.wagered_amount:
                        bonus_services.remove_wagering(bonus=bonus, amount=bet.wagered_amount)
                entry = _post(
                    wallet=wallet,
                    kind=JournalEntry.Kind.BET_REVERSAL,
                    legs=_legs((_house(provider, currency), -bet.amount), *legs),
                    idempotency_key=f"game:{provider.code}:{transaction_id}",
                    request={"game": request_hash},
                    external_reference=f"{provider.code}:{transaction_id}",
                    metadata={"provider": provider.code, "round": round_id},
                    reverses=bet.entry,
                )
                bet.status = TxStatus.ROLLED_BACK
                bet.save(update_fields=["status"])
            to_cash, to_bonus, forfeited, _ = _totals(legs, wallet)
            return _finish(
                wallet=wallet,
                provider=provider,
                transaction_id=transaction_id,
                kind=TxKind.ROLLBACK,
                round=game_round,
                player=player,
                currency_id=currency,
                amount=amount,
                cash_amount=to_cash,
                bonus_amount=to_bonus,
                forfeited_amount=forfeited,
                reference_transaction_id=bet_transaction_id,
                rollback_outcome=outcome,
                entry=entry,
                request_hash=request_hash,
            )
    except (IntegrityError, IdempotencyConflict) as exc:
        return _settle_race(exc, **lookup)
