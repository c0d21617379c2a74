"""On PostgreSQL an entry with one checked account is written by a single statement in
autocommit mode, with no transaction around it. These tests run outside the test transaction
so that path, and its refusals, are what is exercised."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.models.signals import post_save

from tests.wallets.factories import PlayerFactory, fund
from wallets import errors, selectors, services
from wallets.models import Account, BalanceDelta, JournalEntry, Player, Posting

pytestmark = pytest.mark.django_db(transaction=True)


def cash(player) -> Decimal:
    return Account.objects.get(owner=player, kind=Account.Kind.PLAYER_CASH).balance


def test_bet_in_autocommit_moves_money_and_tells_post_save_receivers():
    player = PlayerFactory()
    fund(player, "10.00")
    heard = []

    def receiver(sender, instance, created, **kwargs):
        heard.append((instance.pk, created))

    post_save.connect(receiver, sender=JournalEntry)
    try:
        assert not connection.in_atomic_block
        bet = services.debit_bet(player=player, currency="EUR", amount="4.00", idempotency_key="b")
    finally:
        post_save.disconnect(receiver, sender=JournalEntry)
    assert heard == [(bet.pk, True)]
    assert cash(player) == Decimal("6.00")
    assert Posting.objects.get(entry=bet, account__owner=player).balance_after == Decimal("6.00")
    assert BalanceDelta.objects.filter(account__kind=Account.Kind.GAME_HOUSE).count() == 1
    assert selectors.ledger_problems() == []


def test_refused_bet_in_autocommit_writes_nothing():
    player = PlayerFactory()
    fund(player, "10.00")
    counts = (JournalEntry.objects.count(), Posting.objects.count(), BalanceDelta.objects.count())
    with pytest.raises(errors.InsufficientFunds) as refused:
        services.debit_bet(player=player, currency="EUR", amount="10.01", idempotency_key="b")
    assert refused.value.details == {"balance": "10.00", "currency": "EUR", "required": "10.01"}
    assert (
        JournalEntry.objects.count(),
        Posting.objects.count(),
        BalanceDelta.objects.count(),
    ) == counts
    assert cash(player) == Decimal("10.00")
    # The key stays free: the same request succeeds once there is money.
    fund(player, "1.00")
    services.debit_bet(player=player, currency="EUR", amount="10.01", idempotency_key="b")
    assert cash(player) == Decimal("0.99")


def test_replay_and_conflict_in_autocommit():
    player = PlayerFactory()
    fund(player, "10.00")
    first = services.debit_bet(player=player, currency="EUR", amount="1.00", idempotency_key="b")
    assert (
        services.debit_bet(player=player, currency="EUR", amount="1", idempotency_key="b") == first
    )
    with pytest.raises(errors.IdempotencyConflict):
        services.debit_bet(player=player, currency="EUR", amount="2.00", idempotency_key="b")
    assert cash(player) == Decimal("9.00")


def test_prepared_statements_survive_a_reconnect():
    player = PlayerFactory()
    fund(player, "10.00")
    connection.close()
    services.debit_bet(player=player, currency="EUR", amount="1.00", idempotency_key="after")
    assert cash(player) == Decimal("9.00")


def test_a_player_frozen_after_their_wallet_was_remembered_is_refused_with_nothing_written():
    player = PlayerFactory()
    fund(player, "10.00")
    services.debit_bet(player=player, currency="EUR", amount="1.00", idempotency_key="before")
    Player.objects.filter(pk=player.pk).update(status=Player.Status.FROZEN)
    entries = JournalEntry.objects.count()

    with pytest.raises(errors.PlayerBlocked) as refused:
        services.debit_bet(player=player, currency="EUR", amount="1.00", idempotency_key="after")

    assert refused.value.details == {"status": "frozen"}
    assert JournalEntry.objects.count() == entries
    assert cash(player) == Decimal("9.00")
    # Wins are still paid to a frozen player through the same remembered wallet.
    services.credit_win(player=player, currency="EUR", amount="2.00", idempotency_key="win")
    assert cash(player) == Decimal("11.00")
    assert selectors.ledger_problems() == []
