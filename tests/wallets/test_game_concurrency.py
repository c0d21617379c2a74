"""Real threads calling the signed game-wallet endpoint for one player on PostgreSQL."""

import random
import threading
from decimal import Decimal

import pytest
from django.db import connections
from django.test import Client

from tests.wallets.factories import PlayerFactory, fund, key
from tests.wallets.game_factories import SignedProvider, make_provider, new_id
from wallets import bonus_services, selectors
from wallets.models import Account, Bonus, GameTransaction

pytestmark = pytest.mark.django_db(transaction=True)
Kind = Account.Kind
THREADS = 8
ROUNDS_PER_THREAD = 15


def run_threads(worker, count=THREADS, seconds=3):
    failures: list[BaseException] = []
    start = threading.Barrier(count)

    def body(index):
        try:
            start.wait()
            worker(index)
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    assert not any(t.is_alive() for t in threads), "a worker hung: deadlock or lost wake-up"
    assert failures == [], failures


def balances(player) -> tuple[Decimal, Decimal]:
    rows = dict(
        Account.objects.filter(owner=player, currency_id="EUR").values_list("kind", "balance")
    )
    return rows[Kind.PLAYER_CASH], rows[Kind.PLAYER_BONUS]


def test_threads_betting_and_winning_for_one_player_lose_no_update():
    studio = make_provider()
    player = PlayerFactory(country="MT")
    fund(player, "100.00")
    bonus = bonus_services.grant_bonus(
        player=player,
        currency="EUR",
        amount="50.00",
        wagering_multiplier=1000,
        expires_at=Bonus._meta.get_field("expires_at").to_python("2099-01-01T00:00:00Z"),
        idempotency_key=key(),
    )
    refused: list[str] = []
    retried = []
    lock = threading.Lock()

    def worker(index):
        rng = random.Random(index)
        caller = SignedProvider(provider=studio.provider, secret=studio.secret, client=Client())
        # A fixed number of rounds, not a time budget: the test must exercise the wallet as
        # much on a loaded CI machine as on a quiet one.
        for _ in range(ROUNDS_PER_THREAD):
            round_id = new_id(f"r{index}")
            bet_tx = new_id("b")
            amount = f"{rng.randint(1, 2000) / 100:.2f}"
            response = caller.bet(player, amount, tx=bet_tx, round_id=round_id)
            if response.status_code != 200:
                assert response.json()["error"]["code"] == "insufficient_funds", response.json()
                with lock:
                    refused.append(bet_tx)
                continue
            if rng.random() < 0.2:  # a provider timeout: the same bet is sent again
                again = caller.bet(player, amount, tx=bet_tx, round_id=round_id)
                assert again.json() == response.json()
                with lock:
                    retried.append(bet_tx)
            if rng.random() < 0.15:
                assert caller.rollback(player, bet_tx=bet_tx, round_id=round_id).status_code == 200
                continue
            win = f"{rng.randint(0, 3000) / 100:.2f}"
            assert caller.win(player, win, round_id=round_id, round_closed=True).status_code == 200

    run_threads(worker)

    bets = GameTransaction.objects.filter(kind="bet", status="accepted")
    wins = GameTransaction.objects.filter(kind="win")
    assert bets.count() > THREADS * ROUNDS_PER_THREAD / 2, "the test did not exercise the wallet"
    assert refused or retried
    staked_cash = sum(b.cash_amount for b in bets)
    staked_bonus = sum(b.bonus_amount for b in bets)
    won_cash = sum(w.cash_amount for w in wins)
    won_bonus = sum(w.bonus_amount for w in wins)
    cash, bonus_money = balances(player)
    assert cash == Decimal("100.00") - staked_cash + won_cash
    assert bonus_money == Decimal("50.00") - staked_bonus + won_bonus
    assert cash >= 0 and bonus_money >= 0
    bonus.refresh_from_db()
    assert bonus.wagered == sum(b.wagered_amount for b in bets)
    # What the provider was told after its last call matches the books.
    last = GameTransaction.objects.order_by("-id").first()
    assert (last.cash_after, last.bonus_after) == (cash, bonus_money)
    assert selectors.ledger_problems() == []


def test_the_same_bet_sent_by_many_threads_at_once_moves_money_once():
    studio = make_provider()
    player = PlayerFactory()
    fund(player, "100.00")
    token = studio.session(player)
    answers = []
    lock = threading.Lock()

    def worker(index):
        caller = SignedProvider(provider=studio.provider, secret=studio.secret, client=Client())
        response = caller.bet(player, "10.00", tx="b-same", round_id="r-same", session_token=token)
        with lock:
            answers.append((response.status_code, response.json()))

    run_threads(worker)

    assert {status for status, _ in answers} == {200}
    assert len({str(body) for _, body in answers}) == 1
    assert balances(player)[0] == Decimal("90.00")
    assert GameTransaction.objects.filter(transaction_id="b-same").count() == 1
    assert selectors.ledger_problems() == []


def test_a_rollback_racing_its_bet_never_leaves_the_stake_taken():
    studio = make_provider()
    player = PlayerFactory()
    fund(player, "100.00")
    token = studio.session(player)

    for attempt in range(10):
        bet_tx, round_id, rollback_tx = f"b-{attempt}", f"r-{attempt}", f"rb-{attempt}"

        def worker(index, bet_tx=bet_tx, round_id=round_id, rollback_tx=rollback_tx):
            caller = SignedProvider(provider=studio.provider, secret=studio.secret, client=Client())
            if index == 0:
                caller.bet(player, "10.00", tx=bet_tx, round_id=round_id, session_token=token)
            else:
                caller.rollback(player, bet_tx=bet_tx, round_id=round_id, tx=rollback_tx)

        run_threads(worker, count=2)

    # Whichever came first, every bet ends rolled back (or refused): the player keeps 100.00.
    assert balances(player)[0] == Decimal("100.00")
    assert not GameTransaction.objects.filter(kind="bet", status="accepted").exists()
    assert selectors.ledger_problems() == []


def test_forfeit_racing_bets_and_wins_leaves_no_bonus_money_behind():
    studio = make_provider()
    player = PlayerFactory(country="MT")  # no cash: every stake is bonus money
    bonus_services.grant_bonus(
        player=player,
        currency="EUR",
        amount="80.00",
        wagering_multiplier=1000,
        expires_at=Bonus._meta.get_field("expires_at").to_python("2099-01-01T00:00:00Z"),
        idempotency_key=key(),
    )
    token = studio.session(player)
    some_bets_placed = threading.Event()
    placed = []
    lock = threading.Lock()

    def worker(index):
        if index == 0:
            assert some_bets_placed.wait(timeout=60)
            forfeited = bonus_services.forfeit_pending_bonuses(player=player, reason="withdrawal")
            assert len(forfeited) == 1
            return
        rng = random.Random(index)
        caller = SignedProvider(provider=studio.provider, secret=studio.secret, client=Client())
        for _ in range(ROUNDS_PER_THREAD):
            round_id = new_id("r")
            bet = caller.bet(player, "1.00", round_id=round_id, session_token=token)
            if bet.status_code == 200:
                with lock:
                    placed.append(round_id)
                    if len(placed) >= 10:
                        some_bets_placed.set()
            else:
                assert bet.json()["error"]["code"] == "insufficient_funds"
            win = f"{rng.randint(0, 300) / 100:.2f}"
            answer = caller.win(player, win, round_id=round_id)
            assert answer.status_code == (200 if bet.status_code == 200 else 404)

    run_threads(worker)

    bonus = Bonus.objects.get(player=player)
    assert bonus.status == Bonus.Status.FORFEITED
    # Nothing is left in the bonus account once its bonus is gone: the bonus shares of wins
    # paid after the forfeit went to bonus expense, not to the player.
    assert balances(player) == (Decimal(0), Decimal(0))
    assert selectors.ledger_problems() == []
