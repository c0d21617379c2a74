from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from tests.wallets.factories import PlayerFactory, StaffFactory, fund, key
from wallets import errors, selectors, services
from wallets.models import Account, BalanceDelta, JournalEntry, Player, Posting

pytestmark = pytest.mark.django_db
Kind = Account.Kind


@pytest.fixture(autouse=True, params=["single_statement", "statement_by_statement"])
def posting_path(request, settings):
    """Every service test runs on both ways of writing an entry (see _write_entry)."""
    settings.LEDGER_SINGLE_STATEMENT_POSTING = request.param == "single_statement"


def balance(player, kind=Kind.PLAYER_CASH, currency="EUR") -> Decimal:
    return Account.objects.get(owner=player, kind=kind, currency_id=currency).balance


def legs(entry) -> list[tuple[str, str, Decimal]]:
    return sorted(
        (p.account.kind, p.account.system_code, p.amount)
        for p in entry.postings.select_related("account")
    )


def assert_ledger_clean():
    assert selectors.ledger_problems() == []


# --- each service ----------------------------------------------------------------------------


def test_deposit_credits_cash_from_the_providers_clearing_account():
    player = PlayerFactory()
    entry = services.credit_deposit(
        player=player,
        currency="EUR",
        amount=Decimal("100.50"),
        provider_code="card-psp",
        idempotency_key="dep-1",
        external_reference="psp-123",
    )
    assert entry.kind == JournalEntry.Kind.DEPOSIT
    assert entry.external_reference == "psp-123"
    assert legs(entry) == [
        (Kind.PLAYER_CASH, "", Decimal("100.50")),
        (Kind.PROVIDER_CLEARING, "card-psp", Decimal("-100.50")),
    ]
    assert balance(player) == Decimal("100.50")
    cash_posting = entry.postings.get(account__kind=Kind.PLAYER_CASH)
    assert cash_posting.balance_after == Decimal("100.50")
    assert_ledger_clean()


def test_hold_release_and_settle_move_money_through_the_hold_account():
    player = PlayerFactory()
    fund(player, "100.00")
    services.hold_withdrawal(player=player, currency="EUR", amount="60.00", idempotency_key=key())
    assert (balance(player), balance(player, Kind.PLAYER_HOLD)) == (Decimal(40), Decimal(60))

    services.release_hold(player=player, currency="EUR", amount="10.00", idempotency_key=key())
    assert (balance(player), balance(player, Kind.PLAYER_HOLD)) == (Decimal(50), Decimal(50))

    settle = services.settle_withdrawal(
        player=player, currency="EUR", amount="50.00", provider_code="bank", idempotency_key=key()
    )
    assert legs(settle) == [
        (Kind.PLAYER_HOLD, "", Decimal("-50.00")),
        (Kind.PROVIDER_CLEARING, "bank", Decimal("50.00")),
    ]
    assert (balance(player), balance(player, Kind.PLAYER_HOLD)) == (Decimal(50), Decimal(0))
    assert_ledger_clean()


def test_settling_more_than_is_held_is_refused():
    player = PlayerFactory()
    fund(player, "100.00")
    services.hold_withdrawal(player=player, currency="EUR", amount="30.00", idempotency_key=key())
    with pytest.raises(errors.InsufficientFunds):
        services.settle_withdrawal(
            player=player,
            currency="EUR",
            amount="31.00",
            provider_code="bank",
            idempotency_key=key(),
        )
    assert balance(player, Kind.PLAYER_HOLD) == Decimal(30)


def test_bet_win_and_reversal():
    player = PlayerFactory()
    fund(player, "20.00")
    bet = services.debit_bet(
        player=player, currency="EUR", amount="5.00", game_code="slots", idempotency_key=key()
    )
    assert legs(bet) == [
        (Kind.GAME_HOUSE, "slots", Decimal("5.00")),
        (Kind.PLAYER_CASH, "", Decimal("-5.00")),
    ]
    services.credit_win(
        player=player, currency="EUR", amount="12.50", game_code="slots", idempotency_key=key()
    )
    assert balance(player) == Decimal("27.50")

    reversal = services.reverse_bet(bet_entry=bet, idempotency_key=key())
    assert reversal.reverses == bet
    assert legs(reversal) == [
        (Kind.GAME_HOUSE, "slots", Decimal("-5.00")),
        (Kind.PLAYER_CASH, "", Decimal("5.00")),
    ]
    assert balance(player) == Decimal("32.50")
    assert_ledger_clean()


def test_a_bet_is_reversed_once_only():
    player = PlayerFactory()
    fund(player, "20.00")
    bet = services.debit_bet(player=player, currency="EUR", amount="5.00", idempotency_key=key())
    services.reverse_bet(bet_entry=bet, idempotency_key="rev-1")
    with pytest.raises(errors.InvalidReversal):
        services.reverse_bet(bet_entry=bet, idempotency_key="rev-2")
    assert balance(player) == Decimal("20.00")


def test_only_bets_can_be_reversed():
    player = PlayerFactory()
    deposit = fund(player, "20.00")
    with pytest.raises(errors.InvalidReversal):
        services.reverse_bet(bet_entry=deposit, idempotency_key=key())


def test_currency_conversion_posts_both_legs_through_fx_in_one_entry():
    player = PlayerFactory()
    fund(player, "100.00", "EUR")
    entry = services.convert_currency(
        player=player,
        from_currency="EUR",
        to_currency="BTC",
        amount="50.00",
        rate="0.0000123456789",
        idempotency_key=key(),
    )
    # 50 * 0.0000123456789 = 0.000617283945 -> rounded down to 8 decimals
    assert balance(player, currency="BTC") == Decimal("0.00061728")
    assert balance(player, currency="EUR") == Decimal("50.00")
    assert legs(entry) == sorted(
        [
            (Kind.PLAYER_CASH, "", Decimal("-50.00")),
            (Kind.FX, "", Decimal("50.00")),
            (Kind.FX, "", Decimal("-0.00061728")),
            (Kind.PLAYER_CASH, "", Decimal("0.00061728")),
        ]
    )
    assert entry.metadata["bought"] == "0.00061728"
    assert_ledger_clean()


def test_conversion_that_buys_nothing_is_refused():
    player = PlayerFactory()
    fund(player, "1.00", "EUR")
    with pytest.raises(errors.NonPositiveAmount):
        services.convert_currency(
            player=player,
            from_currency="EUR",
            to_currency="JPY",
            amount="0.01",
            rate="1.5",
            idempotency_key=key(),
        )
    assert JournalEntry.objects.filter(kind=JournalEntry.Kind.FX_CONVERSION).count() == 0


def test_manual_adjustment_needs_reason_and_actor_and_records_them():
    player = PlayerFactory()
    staff = StaffFactory()
    with pytest.raises(errors.MissingReason):
        services.adjust_balance(
            player=player,
            currency="EUR",
            amount="10",
            reason=" ",
            actor=staff,
            idempotency_key=key(),
        )
    with pytest.raises(errors.MissingReason):
        services.adjust_balance(
            player=player,
            currency="EUR",
            amount="10",
            reason="goodwill",
            actor=None,
            idempotency_key=key(),
        )
    entry = services.adjust_balance(
        player=player,
        currency="EUR",
        amount="10.00",
        reason="goodwill after outage",
        actor=staff,
        idempotency_key=key(),
    )
    assert entry.actor == staff and entry.metadata["reason"] == "goodwill after outage"
    assert balance(player) == Decimal("10.00")
    services.adjust_balance(
        player=player,
        currency="EUR",
        amount="-4.00",
        reason="fix",
        actor=staff,
        idempotency_key=key(),
    )
    assert balance(player) == Decimal("6.00")
    with pytest.raises(errors.InsufficientFunds):
        services.adjust_balance(
            player=player,
            currency="EUR",
            amount="-7.00",
            reason="fix",
            actor=staff,
            idempotency_key=key(),
        )
    assert_ledger_clean()


# --- domain errors ---------------------------------------------------------------------------


def test_bet_over_balance_is_refused_with_the_balance_and_writes_nothing():
    player = PlayerFactory()
    fund(player, "10.00")
    entries_before = JournalEntry.objects.count()
    with pytest.raises(errors.InsufficientFunds) as refused:
        services.debit_bet(player=player, currency="EUR", amount="10.01", idempotency_key="b-1")
    assert refused.value.code == "insufficient_funds"
    assert refused.value.details["balance"] == "10.00"
    assert JournalEntry.objects.count() == entries_before
    assert not JournalEntry.objects.filter(idempotency_key="b-1").exists()
    assert balance(player) == Decimal("10.00")


@pytest.mark.parametrize("status", [Player.Status.FROZEN, Player.Status.CLOSED])
def test_blocked_player_cannot_deposit_bet_hold_or_convert(status):
    player = PlayerFactory()
    fund(player, "50.00")
    Player.objects.filter(pk=player.pk).update(status=status)
    attempts = [
        lambda: fund(player, "1.00"),
        lambda: services.debit_bet(
            player=player, currency="EUR", amount="1", idempotency_key=key()
        ),
        lambda: services.hold_withdrawal(
            player=player, currency="EUR", amount="1", idempotency_key=key()
        ),
        lambda: services.convert_currency(
            player=player,
            from_currency="EUR",
            to_currency="USD",
            amount="1",
            rate="1.1",
            idempotency_key=key(),
        ),
    ]
    for attempt in attempts:
        with pytest.raises(errors.PlayerBlocked) as refused:
            attempt()
        assert refused.value.code == "player_blocked"
    assert balance(player) == Decimal("50.00")


def test_frozen_player_is_still_paid_wins():
    player = PlayerFactory()
    fund(player, "50.00")
    services.freeze_player(player=player, actor=StaffFactory(), reason="AML review")
    services.credit_win(player=player, currency="EUR", amount="5", idempotency_key=key())
    assert balance(player) == Decimal("55.00")


def test_unknown_currency_is_refused():
    player = PlayerFactory()
    with pytest.raises(errors.UnknownCurrency) as refused:
        fund(player, "1.00", currency="XYZ")
    assert refused.value.code == "unknown_currency"


@pytest.mark.parametrize(
    ("currency", "amount"),
    [("EUR", "1.001"), ("JPY", "100.5"), ("BTC", "0.000000001"), ("USDT", "1.0000001")],
)
def test_amount_with_more_decimals_than_the_currency_is_refused_not_rounded(currency, amount):
    player = PlayerFactory()
    with pytest.raises(errors.BadPrecision) as refused:
        fund(player, amount, currency=currency)
    assert refused.value.code == "bad_precision"
    assert not Posting.objects.exists()


def test_trailing_zeros_are_not_extra_precision():
    player = PlayerFactory()
    fund(player, "1.500", currency="EUR")
    assert balance(player) == Decimal("1.50")


@pytest.mark.parametrize("amount", ["0", "-5.00", "0.00"])
def test_non_positive_amounts_are_refused(amount):
    player = PlayerFactory()
    with pytest.raises(errors.NonPositiveAmount) as refused:
        fund(player, amount)
    assert refused.value.code == "non_positive_amount"


# --- idempotency -----------------------------------------------------------------------------


def test_same_key_and_request_returns_the_original_entry_and_moves_nothing():
    player = PlayerFactory()
    fund(player, "30.00")
    first = services.debit_bet(player=player, currency="EUR", amount="10.00", idempotency_key="k1")
    again = services.debit_bet(player=player, currency="EUR", amount="10.00", idempotency_key="k1")
    assert again.pk == first.pk
    assert balance(player) == Decimal("20.00")
    assert Posting.objects.filter(entry=first).count() == 2


def test_replay_is_answered_even_when_the_balance_no_longer_covers_it():
    player = PlayerFactory()
    fund(player, "10.00")
    first = services.debit_bet(player=player, currency="EUR", amount="10.00", idempotency_key="k1")
    assert (
        services.debit_bet(player=player, currency="EUR", amount="10", idempotency_key="k1")
        == first
    )


def test_same_key_with_a_different_request_is_a_conflict():
    player = PlayerFactory()
    fund(player, "30.00")
    services.debit_bet(player=player, currency="EUR", amount="10.00", idempotency_key="k1")
    with pytest.raises(errors.IdempotencyConflict) as conflict:
        services.debit_bet(player=player, currency="EUR", amount="11.00", idempotency_key="k1")
    assert conflict.value.http_status == 409
    with pytest.raises(errors.IdempotencyConflict):
        services.credit_win(player=player, currency="EUR", amount="10.00", idempotency_key="k1")
    assert balance(player) == Decimal("20.00")


def test_replayed_reversal_returns_the_first_reversal():
    player = PlayerFactory()
    fund(player, "20.00")
    bet = services.debit_bet(player=player, currency="EUR", amount="5.00", idempotency_key=key())
    first = services.reverse_bet(bet_entry=bet, idempotency_key="rev")
    assert services.reverse_bet(bet_entry=bet, idempotency_key="rev") == first
    assert balance(player) == Decimal("20.00")


def test_failed_request_leaves_its_key_free_for_a_retry():
    player = PlayerFactory()
    with pytest.raises(errors.InsufficientFunds):
        services.debit_bet(player=player, currency="EUR", amount="5.00", idempotency_key="k1")
    fund(player, "5.00")
    services.debit_bet(player=player, currency="EUR", amount="5.00", idempotency_key="k1")
    assert balance(player) == Decimal(0)


def test_entry_that_does_not_balance_is_refused():
    player = PlayerFactory()
    accounts = services.open_wallet(player=player, currency="EUR")
    house = services.system_account(kind=Kind.GAME_HOUSE, currency="EUR")
    with pytest.raises(errors.UnbalancedEntry):
        services.post_entry(
            kind=JournalEntry.Kind.WIN,
            legs=[(accounts[Kind.PLAYER_CASH], Decimal(5)), (house, Decimal(-4))],
            idempotency_key=key(),
            request={},
        )
    assert not JournalEntry.objects.exists()


# --- database defences -----------------------------------------------------------------------


def test_check_constraint_keeps_player_accounts_from_going_negative():
    player = PlayerFactory()
    fund(player, "5.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(owner=player, kind=Kind.PLAYER_CASH).update(balance=Decimal("-1"))


def test_postings_and_entries_cannot_be_updated_or_deleted():
    player = PlayerFactory()
    entry = fund(player, "5.00")
    statements = [
        ("UPDATE wallets_posting SET amount = amount * 2 WHERE entry_id = %s", [entry.pk]),
        ("DELETE FROM wallets_posting WHERE entry_id = %s", [entry.pk]),
        ("UPDATE wallets_journalentry SET kind = 'win' WHERE id = %s", [entry.pk]),
        ("DELETE FROM wallets_journalentry WHERE id = %s", [entry.pk]),
    ]
    for sql, params in statements:
        with (
            pytest.raises(IntegrityError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)
    assert Posting.objects.filter(entry=entry).count() == 2


# --- system accounts are rolled up, not locked -----------------------------------------------


def test_system_postings_leave_deltas_that_roll_up_into_the_balance():
    player = PlayerFactory()
    fund(player, "100.00", provider="psp")
    services.debit_bet(
        player=player, currency="EUR", amount="30.00", game_code="g", idempotency_key=key()
    )
    services.credit_win(
        player=player, currency="EUR", amount="10.00", game_code="g", idempotency_key=key()
    )
    house = Account.objects.get(kind=Kind.GAME_HOUSE, system_code="g")
    assert house.balance == 0
    assert selectors.account_balance(house) == Decimal("20.00")
    assert_ledger_clean()

    assert services.roll_up_system_balances() == 3
    house.refresh_from_db()
    assert house.balance == Decimal("20.00")
    assert not BalanceDelta.objects.exists()
    assert selectors.account_balance(house) == Decimal("20.00")
    assert services.roll_up_system_balances() == 0
    assert_ledger_clean()


def test_ledger_problems_finds_a_tampered_balance():
    player = PlayerFactory()
    fund(player, "5.00")
    Account.objects.filter(owner=player, kind=Kind.PLAYER_CASH).update(balance=Decimal("7"))
    problems = selectors.ledger_problems()
    assert [p.kind for p in problems] == ["balance"]
    assert problems[0].expected == Decimal("5") and problems[0].found == Decimal("7")


# --- player status ---------------------------------------------------------------------------


def test_freeze_and_unfreeze_are_audited():
    player = PlayerFactory()
    staff = StaffFactory()
    services.freeze_player(player=player, actor=staff, reason="chargeback investigation")
    services.unfreeze_player(player=player, actor=staff, reason="resolved")
    player.refresh_from_db()
    assert player.status == Player.Status.ACTIVE
    trail = list(
        player.status_changes.order_by("id").values_list("from_status", "to_status", "actor")
    )
    assert trail == [("active", "frozen", staff.pk), ("frozen", "active", staff.pk)]
    with pytest.raises(errors.InvalidStatusChange):
        services.unfreeze_player(player=player, actor=staff, reason="again")
