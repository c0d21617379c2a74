"""Bonus money: grant, spend order, win split, wagering, conversion and forfeit."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from tests.wallets.factories import PlayerFactory, StaffFactory, fund, key
from tests.wallets.game_factories import make_provider
from wallets import bonus_services, selectors, tasks
from wallets.errors import IdempotencyConflict, PlayerBlocked
from wallets.models import Account, Bonus, GameTransaction, JournalEntry

pytestmark = pytest.mark.django_db
Kind = Account.Kind


def balance(player, kind, currency="EUR") -> Decimal:
    return Account.objects.get(owner=player, kind=kind, currency_id=currency).balance


def wallet(player, currency="EUR") -> tuple[Decimal, Decimal]:
    return balance(player, Kind.PLAYER_CASH, currency), balance(player, Kind.PLAYER_BONUS, currency)


def expense(currency="EUR") -> Decimal:
    account = Account.objects.get(
        kind=Kind.BONUS_EXPENSE, currency_id=currency, system_code=bonus_services.BONUS_EXPENSE_CODE
    )
    return selectors.account_balance(account)


def legs(entry) -> list[tuple[str, Decimal]]:
    return sorted((p.account.kind, p.amount) for p in entry.postings.select_related("account"))


def assert_ledger_clean():
    assert selectors.ledger_problems() == []


def grant(player, amount="20.00", multiplier=5, currency="EUR", **terms) -> Bonus:
    return bonus_services.grant_bonus(
        player=player,
        currency=currency,
        amount=amount,
        wagering_multiplier=multiplier,
        expires_at=terms.pop("expires_at", timezone.now() + timedelta(days=7)),
        idempotency_key=terms.pop("idempotency_key", key()),
        **terms,
    )


@pytest.fixture
def studio():
    return make_provider()


@pytest.fixture
def player():
    player = PlayerFactory(country="MT")
    fund(player, "10.00")
    return player


# --- grant ---------------------------------------------------------------------------------


def test_grant_moves_bonus_expense_into_the_players_bonus_account(player):
    bonus = grant(player, "20.00", multiplier=35, reason="welcome")
    assert bonus.is_active
    assert (bonus.applied_multiplier, bonus.wagering_required) == (Decimal(35), Decimal(700))
    assert bonus.grant_entry.kind == JournalEntry.Kind.BONUS_GRANT
    assert legs(bonus.grant_entry) == [
        (Kind.BONUS_EXPENSE, Decimal("-20.00")),
        (Kind.PLAYER_BONUS, Decimal("20.00")),
    ]
    assert wallet(player) == (Decimal("10.00"), Decimal("20.00"))
    assert expense() == Decimal("-20.00")
    assert_ledger_clean()


def test_wagering_is_capped_by_the_players_jurisdiction(player):
    british = PlayerFactory(country="GB")
    capped = grant(british, "20.00", multiplier=35)
    assert (capped.wagering_multiplier, capped.applied_multiplier) == (Decimal(35), Decimal(10))
    assert capped.wagering_required == Decimal("200.00")
    with override_settings(BONUS_WAGERING_CAPS={"MT": 3}):
        assert grant(player, "10.00", multiplier=35).wagering_required == Decimal("30.00")


def test_grant_is_idempotent_and_a_changed_replay_conflicts(player):
    first = grant(
        player, "20.00", idempotency_key="welcome-1", expires_at=timezone.now() + timedelta(days=1)
    )
    again = bonus_services.grant_bonus(
        player=player, currency="EUR", amount="20.00", wagering_multiplier=5,
        expires_at=first.expires_at, idempotency_key="welcome-1",
    )  # fmt: skip
    assert again.pk == first.pk
    with pytest.raises(IdempotencyConflict):
        bonus_services.grant_bonus(
            player=player, currency="EUR", amount="25.00", wagering_multiplier=5,
            expires_at=first.expires_at, idempotency_key="welcome-1",
        )  # fmt: skip
    assert Bonus.objects.count() == 1
    assert wallet(player) == (Decimal("10.00"), Decimal("20.00"))


def test_a_second_active_bonus_in_the_same_currency_is_refused(player):
    grant(player)
    entries = JournalEntry.objects.count()
    with pytest.raises(bonus_services.BonusAlreadyActive):
        grant(player)
    assert JournalEntry.objects.count() == entries
    assert Bonus.objects.count() == 1


def test_bad_terms_are_refused(player):
    with pytest.raises(bonus_services.InvalidBonus):
        grant(player, expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(bonus_services.InvalidBonus):
        grant(player, multiplier="-1")
    assert not Bonus.objects.exists()


def test_frozen_player_gets_no_bonus(player):
    from wallets import services

    services.freeze_player(player=player, actor=StaffFactory(), reason="review")
    with pytest.raises(PlayerBlocked):
        grant(player)
    assert not Bonus.objects.exists()


# --- spending and winning --------------------------------------------------------------------


def test_bets_spend_cash_first_then_bonus(studio, player):
    bonus = grant(player, "20.00", multiplier=10)
    response = studio.bet(player, "15.00", tx="b-1", round_id="r-1")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["cash_amount"], body["bonus_amount"]) == ("10.00", "5.00")
    assert (body["cash"], body["bonus"], body["balance"]) == ("0.00", "15.00", "15.00")
    assert legs(GameTransaction.objects.get(transaction_id="b-1").entry) == [
        (Kind.GAME_HOUSE, Decimal("15.00")),
        (Kind.PLAYER_BONUS, Decimal("-5.00")),
        (Kind.PLAYER_CASH, Decimal("-10.00")),
    ]
    bonus.refresh_from_db()
    assert bonus.wagered == Decimal("15.00")
    assert_ledger_clean()


@override_settings(BONUS_SPEND_ORDER="bonus_first")
def test_spend_order_setting_can_spend_bonus_first(studio, player):
    grant(player, "20.00", multiplier=10)
    body = studio.bet(player, "25.00").json()
    assert (body["cash_amount"], body["bonus_amount"]) == ("5.00", "20.00")
    assert wallet(player) == (Decimal("5.00"), Decimal("0.00"))


def test_win_returns_to_cash_and_bonus_in_proportion_to_the_stake(studio, player):
    grant(player, "20.00", multiplier=10)
    studio.bet(player, "15.00", round_id="r-1")  # 10 cash + 5 bonus
    response = studio.win(player, "10.00", tx="w-1", round_id="r-1")
    body = response.json()
    # 10 x 5/15 = 3.333.. to bonus, rounded down; the remainder to cash.
    assert (body["cash_amount"], body["bonus_amount"]) == ("6.67", "3.33")
    assert wallet(player) == (Decimal("6.67"), Decimal("18.33"))
    assert legs(GameTransaction.objects.get(transaction_id="w-1").entry) == [
        (Kind.GAME_HOUSE, Decimal("-10.00")),
        (Kind.PLAYER_BONUS, Decimal("3.33")),
        (Kind.PLAYER_CASH, Decimal("6.67")),
    ]
    assert_ledger_clean()


def test_bet_over_the_bonus_max_bet_is_refused_while_it_is_active(studio, player):
    grant(player, "20.00", multiplier=10, max_bet="5.00")
    entries = JournalEntry.objects.count()
    response = studio.bet(player, "5.01")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "max_bet_exceeded"
    assert response.json()["error"]["details"]["max_bet"] == "5.00"
    assert JournalEntry.objects.count() == entries
    assert studio.bet(player, "5.00").status_code == 200


def test_bonus_money_is_not_spendable_without_an_active_bonus(studio, player):
    bonus = grant(player, "20.00", multiplier=10)
    bonus_services.cancel_bonus(bonus=bonus, actor=StaffFactory(), reason="abuse")
    response = studio.bet(player, "15.00")
    assert response.json()["error"]["code"] == "insufficient_funds"


def test_rollback_of_a_bonus_bet_returns_the_bonus_share_and_the_wagering(studio, player):
    bonus = grant(player, "20.00", multiplier=10)
    studio.bet(player, "15.00", tx="b-1", round_id="r-1")
    response = studio.rollback(player, bet_tx="b-1", round_id="r-1")
    assert (response.json()["cash_amount"], response.json()["bonus_amount"]) == ("10.00", "5.00")
    assert wallet(player) == (Decimal("10.00"), Decimal("20.00"))
    bonus.refresh_from_db()
    assert bonus.wagered == 0
    assert_ledger_clean()


# --- conversion and forfeit ------------------------------------------------------------------


def test_meeting_the_wagering_requirement_converts_the_bonus_to_cash(studio, player):
    bonus = grant(player, "20.00", multiplier=1)  # 20.00 to wager
    studio.bet(player, "8.00", round_id="r-1")
    studio.win(player, "8.00", round_id="r-1")
    assert Bonus.objects.get(pk=bonus.pk).is_active
    response = studio.bet(player, "12.00", round_id="r-2")  # 20.00 wagered
    body = response.json()
    # The stake is 10.00 cash (after the 8.00 win) + 2.00 bonus; 18.00 bonus remains, converted.
    assert (body["cash_amount"], body["bonus_amount"]) == ("10.00", "2.00")
    assert (body["cash"], body["bonus"]) == ("18.00", "0.00")
    assert wallet(player) == (Decimal("18.00"), Decimal("0.00"))
    bonus.refresh_from_db()
    assert bonus.status == Bonus.Status.CONVERTED
    assert bonus.converted_amount == Decimal("18.00")
    assert legs(bonus.closing_entry) == [
        (Kind.PLAYER_BONUS, Decimal("-18.00")),
        (Kind.PLAYER_CASH, Decimal("18.00")),
    ]
    assert_ledger_clean()


def test_win_on_a_bonus_stake_after_conversion_is_paid_to_cash(studio, player):
    grant(player, "20.00", multiplier=1)
    studio.bet(player, "30.00", round_id="r-1")  # 10 cash + 20 bonus, wagering met: 0 converted
    response = studio.win(player, "30.00", round_id="r-1")
    assert (response.json()["cash_amount"], response.json()["bonus_amount"]) == ("30.00", "0.00")
    assert wallet(player) == (Decimal("30.00"), Decimal("0.00"))
    assert_ledger_clean()


def test_withdrawal_request_forfeits_pending_bonuses(player):
    fund(player, "5.00", currency="GBP")
    eur = grant(player, "20.00")
    gbp = grant(player, "7.00", currency="GBP")
    forfeited = bonus_services.forfeit_pending_bonuses(player=player, reason="withdrawal #42")
    assert {b.pk for b in forfeited} == {eur.pk, gbp.pk}
    eur.refresh_from_db()
    assert (eur.status, eur.forfeit_cause) == (
        Bonus.Status.FORFEITED,
        Bonus.ForfeitCause.WITHDRAWAL,
    )
    assert (eur.forfeited_amount, eur.close_reason) == (Decimal("20.00"), "withdrawal #42")
    assert legs(eur.closing_entry) == [
        (Kind.BONUS_EXPENSE, Decimal("20.00")),
        (Kind.PLAYER_BONUS, Decimal("-20.00")),
    ]
    assert wallet(player) == (Decimal("10.00"), Decimal("0.00"))
    assert wallet(player, "GBP") == (Decimal("5.00"), Decimal("0.00"))
    assert expense() == Decimal(0)
    assert bonus_services.forfeit_pending_bonuses(player=player, reason="again") == []
    assert_ledger_clean()


def test_expired_bonuses_are_forfeited_by_the_periodic_task(player):
    bonus = grant(player, "20.00")
    Bonus.objects.filter(pk=bonus.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert tasks.expire_bonuses.apply().get() == 1
    bonus.refresh_from_db()
    assert (bonus.status, bonus.forfeit_cause) == (
        Bonus.Status.FORFEITED,
        Bonus.ForfeitCause.EXPIRED,
    )
    assert wallet(player) == (Decimal("10.00"), Decimal("0.00"))
    assert bonus_services.expire_bonuses() == 0
    assert_ledger_clean()


def test_expiry_is_scheduled_with_celery_beat():
    from django_celery_beat.models import PeriodicTask

    assert PeriodicTask.objects.filter(task="wallets.tasks.expire_bonuses", enabled=True).exists()


def test_a_bet_after_expiry_forfeits_the_bonus_before_spending(studio, player):
    bonus = grant(player, "20.00")
    Bonus.objects.filter(pk=bonus.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert studio.bet(player, "15.00").json()["error"]["code"] == "insufficient_funds"
    response = studio.bet(player, "10.00")
    assert (response.json()["cash_amount"], response.json()["bonus_amount"]) == ("10.00", "0.00")
    assert Bonus.objects.get(pk=bonus.pk).status == Bonus.Status.FORFEITED
    assert wallet(player) == (Decimal("0.00"), Decimal("0.00"))
    assert_ledger_clean()


def test_operator_cancel_forfeits_and_records_who_and_why(player):
    staff = StaffFactory()
    bonus = bonus_services.cancel_bonus(bonus=grant(player, "20.00"), actor=staff, reason="abuse")
    assert (bonus.status, bonus.forfeit_cause) == (
        Bonus.Status.FORFEITED,
        Bonus.ForfeitCause.CANCELLED,
    )
    assert (bonus.closed_by, bonus.close_reason) == (staff, "abuse")
    assert bonus.closing_entry.actor == staff
    with pytest.raises(bonus_services.BonusNotActive):
        bonus_services.cancel_bonus(bonus=bonus, actor=staff, reason="again")
    assert_ledger_clean()


def test_win_on_a_forfeited_bonus_stake_goes_to_bonus_expense(studio, player):
    bonus = grant(player, "20.00", multiplier=10)
    studio.bet(player, "15.00", tx="b-1", round_id="r-1")  # 10 cash + 5 bonus
    studio.bet(player, "3.00", tx="b-2", round_id="r-2")  # 3 bonus
    bonus_services.forfeit_pending_bonuses(player=player, reason="withdrawal")
    win = studio.win(player, "9.00", round_id="r-1").json()
    assert (win["cash_amount"], win["bonus_amount"]) == ("6.00", "0.00")
    assert GameTransaction.objects.get(kind="win").forfeited_amount == Decimal("3.00")
    rollback = studio.rollback(player, bet_tx="b-2", round_id="r-2").json()
    assert (rollback["cash_amount"], rollback["bonus_amount"]) == ("0.00", "0.00")
    assert wallet(player) == (Decimal("6.00"), Decimal("0.00"))
    # Granted 20.00; 12.00 forfeited at the withdrawal, 3.00 win share and 3.00 stake after.
    assert Bonus.objects.get(pk=bonus.pk).forfeited_amount == Decimal("12.00")
    assert expense() == Decimal("-2.00")
    assert_ledger_clean()


def test_a_wager_free_bonus_converts_to_cash_when_granted(player):
    bonus = grant(player, "20.00", multiplier=0)
    assert (bonus.status, bonus.converted_amount) == (Bonus.Status.CONVERTED, Decimal("20.00"))
    assert wallet(player) == (Decimal("30.00"), Decimal("0.00"))
    assert_ledger_clean()


def test_win_over_several_bets_splits_by_the_rounds_total_stakes(studio, player):
    grant(player, "20.00", multiplier=10)
    studio.bet(player, "6.00", round_id="r-1")  # 6 cash
    studio.bet(player, "6.00", round_id="r-1")  # 4 cash + 2 bonus
    body = studio.win(player, "24.00", round_id="r-1").json()
    # Bonus staked 2 of 12: a sixth of the win goes back to the bonus.
    assert (body["cash_amount"], body["bonus_amount"]) == ("20.00", "4.00")
    assert wallet(player) == (Decimal("20.00"), Decimal("22.00"))
    assert_ledger_clean()
