"""Property: whatever sequence of operations runs, every entry balances, every balance is the
sum of its postings, and each player balance is what a simple model of the rules predicts."""

from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.wallets.factories import PlayerFactory, StaffFactory
from wallets import errors, selectors, services
from wallets.models import Account, JournalEntry

Kind = Account.Kind
CURRENCIES = {"EUR": 2, "BTC": 8}

operation = st.tuples(
    # Deposits weigh more so that the spending operations find money often.
    st.sampled_from(
        ["deposit"] * 3
        + ["bet", "bet", "win", "hold", "release", "settle", "reverse", "convert", "adjust"]
    ),
    st.integers(min_value=0, max_value=1),  # which player
    st.sampled_from(sorted(CURRENCIES)),
    st.integers(min_value=-1, max_value=3000),  # amount in minor units; 0 and -1 are refused
    st.integers(min_value=0, max_value=9),  # idempotency key reuse: 0 means reuse the last key
)


@pytest.mark.django_db
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(operation, min_size=1, max_size=40))
def test_any_sequence_keeps_the_ledger_balanced(operations):
    players = [PlayerFactory(), PlayerFactory()]
    staff = StaffFactory()
    expected: dict[tuple, Decimal] = defaultdict(Decimal)
    bets: list[JournalEntry] = []
    last_key = None
    for player in players:
        for currency, opening in (("EUR", Decimal("50.00")), ("BTC", Decimal("0.00050000"))):
            services.credit_deposit(
                player=player,
                currency=currency,
                amount=opening,
                provider_code="psp",
                idempotency_key=f"opening-{player.pk}-{currency}",
            )
            expected[(player.pk, currency, Kind.PLAYER_CASH)] = opening

    for index, (name, who, currency, minor, reuse) in enumerate(operations):
        player = players[who]
        amount = Decimal(minor).scaleb(-CURRENCIES[currency])
        key = last_key if reuse == 0 and last_key else f"op-{player.pk}-{index}"
        last_key = key
        cash, hold = (
            (player.pk, currency, Kind.PLAYER_CASH),
            (player.pk, currency, Kind.PLAYER_HOLD),
        )
        if name in ("release", "settle") and amount > 0 and expected[hold] > 0:
            # Random amounts would almost never fit inside what is held; aim at it instead.
            amount = min(amount, expected[hold])
        common = {"player": player, "currency": currency, "amount": amount, "idempotency_key": key}
        # name -> (service, its extra arguments, sign of the move on each account)
        calls = {
            "deposit": (services.credit_deposit, {"provider_code": "psp"}, {cash: 1}),
            "bet": (services.debit_bet, {}, {cash: -1}),
            "win": (services.credit_win, {}, {cash: 1}),
            "hold": (services.hold_withdrawal, {}, {cash: -1, hold: 1}),
            "release": (services.release_hold, {}, {cash: 1, hold: -1}),
            "settle": (services.settle_withdrawal, {"provider_code": "psp"}, {hold: -1}),
            "adjust": (
                services.adjust_balance,
                {"reason": "property test", "actor": staff},
                {cash: 1},
            ),
        }
        entries_before = JournalEntry.objects.count()
        try:
            if name == "reverse":
                if not bets:
                    continue
                bet = bets.pop(0)
                services.reverse_bet(bet_entry=bet, idempotency_key=key)
                bet_cash = bet.postings.get(account__owner__isnull=False)
                moves = {
                    (
                        bet_cash.account.owner_id,
                        bet_cash.account.currency_id,
                        Kind.PLAYER_CASH,
                    ): -bet_cash.amount
                }
            elif name == "convert":
                other = "BTC" if currency == "EUR" else "EUR"
                entry = services.convert_currency(
                    player=player,
                    from_currency=currency,
                    to_currency=other,
                    amount=amount,
                    rate="1.37",
                    idempotency_key=key,
                )
                bought = Decimal(entry.metadata["bought"])
                moves = {cash: -amount, (player.pk, other, Kind.PLAYER_CASH): bought}
            else:
                call, extra, signs = calls[name]
                entry = call(**common, **extra)
                moves = {account: sign * amount for account, sign in signs.items()}
                if name == "bet":
                    bets.append(entry)
        except (
            errors.InsufficientFunds,
            errors.NonPositiveAmount,
            errors.IdempotencyConflict,
            errors.InvalidReversal,
        ):
            assert JournalEntry.objects.count() == entries_before
            continue
        if JournalEntry.objects.count() == entries_before:
            continue  # an idempotent replay moved nothing
        for account, delta in moves.items():
            expected[account] += delta

        for (owner, cur, kind), value in expected.items():
            actual = Account.objects.get(owner_id=owner, currency_id=cur, kind=kind).balance
            assert actual == value >= 0

    assert selectors.ledger_problems() == []
