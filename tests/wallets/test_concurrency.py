"""Real threads on real PostgreSQL connections: the ledger's locking, not its logic."""

import random
import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.db.models import Sum

from tests.wallets.factories import PlayerFactory, fund
from wallets import errors, selectors, services
from wallets.models import Account, JournalEntry, Posting

pytestmark = pytest.mark.django_db(transaction=True)
Kind = Account.Kind
THREADS = 8


def run_threads(worker, count=THREADS, seconds=None):
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
        thread.join(timeout=(seconds or 30) + 60)
    assert not any(t.is_alive() for t in threads), "a worker hung: deadlock or lost wake-up"
    assert failures == [], failures


def cash(player, currency="EUR") -> Decimal:
    return Account.objects.get(owner=player, kind=Kind.PLAYER_CASH, currency_id=currency).balance


@pytest.mark.parametrize("single_statement", [True, False])
def test_threads_hammering_one_wallet_lose_no_update_and_never_go_negative(
    settings, single_statement
):
    settings.LEDGER_SINGLE_STATEMENT_POSTING = single_statement
    player = PlayerFactory()
    fund(player, "100.00")
    succeeded: list[tuple[str, Decimal]] = []
    refused = []
    lock = threading.Lock()
    deadline = time.monotonic() + 3

    def worker(index):
        rng = random.Random(index)
        while time.monotonic() < deadline:
            amount = Decimal(rng.randint(1, 2500)) / 100
            op = rng.choice(["bet", "bet", "win", "hold"])
            call = {
                "bet": services.debit_bet,
                "win": services.credit_win,
                "hold": services.hold_withdrawal,
            }[op]
            try:
                call(
                    player=player, currency="EUR", amount=amount, idempotency_key=str(uuid.uuid4())
                )
            except errors.InsufficientFunds:
                with lock:
                    refused.append(op)
            else:
                with lock:
                    succeeded.append((op, amount))

    run_threads(worker, seconds=3)

    signed = {"bet": -1, "hold": -1, "win": 1}
    expected_cash = Decimal("100.00") + sum(signed[op] * amount for op, amount in succeeded)
    expected_hold = sum((amount for op, amount in succeeded if op == "hold"), Decimal(0))
    assert len(succeeded) > 100, "the test did not exercise the wallet"
    assert refused, "the wallet never ran dry, so the insufficient-funds path was not raced"
    assert cash(player) == expected_cash
    assert Account.objects.get(owner=player, kind=Kind.PLAYER_HOLD).balance == expected_hold
    assert cash(player) >= 0
    # Every committed movement is one entry; none was lost or doubled.
    assert JournalEntry.objects.count() == len(succeeded) + 1
    assert selectors.ledger_problems() == []
    # Postings are inserted while the account's row lock is held, so their id order is the
    # order the balance moved in: each balance_after is the running sum.
    running = Decimal(0)
    for amount, balance_after in (
        Posting.objects.filter(account__owner=player, account__kind=Kind.PLAYER_CASH)
        .order_by("id")
        .values_list("amount", "balance_after")
    ):
        running += amount
        assert balance_after == running >= 0
    assert running == expected_cash


@pytest.mark.parametrize("single_statement", [True, False])
def test_transfers_in_both_directions_between_players_never_deadlock(settings, single_statement):
    settings.LEDGER_SINGLE_STATEMENT_POSTING = single_statement
    alice, bob = PlayerFactory(), PlayerFactory()
    fund(alice, "500.00")
    fund(bob, "500.00")
    accounts = {
        p.pk: services.open_wallet(player=p, currency="EUR")[Kind.PLAYER_CASH] for p in (alice, bob)
    }
    moved = []
    lock = threading.Lock()
    deadline = time.monotonic() + 3

    def worker(index):
        rng = random.Random(index)
        # Half the threads push money one way, half the other: the classic deadlock shape.
        source, target = (alice, bob) if index % 2 else (bob, alice)
        while time.monotonic() < deadline:
            amount = Decimal(rng.randint(1, 900)) / 100
            try:
                services.post_entry(
                    kind=JournalEntry.Kind.MANUAL_ADJUSTMENT,
                    legs=[(accounts[source.pk], -amount), (accounts[target.pk], amount)],
                    idempotency_key=str(uuid.uuid4()),
                    request={"test": "transfer"},
                )
            except errors.InsufficientFunds:
                continue
            with lock:
                moved.append(amount)

    run_threads(worker, seconds=3)

    assert len(moved) > 50
    assert cash(alice) + cash(bob) == Decimal("1000.00")
    assert selectors.ledger_problems() == []


def test_concurrent_replays_of_one_key_move_money_once():
    player = PlayerFactory()
    fund(player, "100.00")
    results = []
    lock = threading.Lock()

    def worker(index):
        entry = services.debit_bet(
            player=player, currency="EUR", amount="10.00", idempotency_key="same-bet"
        )
        with lock:
            results.append(entry.pk)

    run_threads(worker)

    assert len(results) == THREADS and len(set(results)) == 1
    assert cash(player) == Decimal("90.00")


def test_roll_up_while_entries_are_written_counts_every_delta_once():
    player = PlayerFactory()
    fund(player, "1000.00")
    deadline = time.monotonic() + 2

    def worker(index):
        if index == 0:
            while time.monotonic() < deadline:
                services.roll_up_system_balances(batch_size=50)
            return
        while time.monotonic() < deadline:
            services.debit_bet(
                player=player, currency="EUR", amount="0.01", idempotency_key=str(uuid.uuid4())
            )

    run_threads(worker, count=4, seconds=2)
    services.roll_up_system_balances()

    house = Account.objects.get(kind=Kind.GAME_HOUSE, currency_id="EUR")
    posted = Posting.objects.filter(account=house).aggregate(s=Sum("amount"))["s"]
    assert house.balance == posted == Decimal("1000.00") - cash(player)
    assert selectors.ledger_problems() == []
    assert connection.vendor == "postgresql"
