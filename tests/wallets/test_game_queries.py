"""What one game-wallet call costs in queries: pinned so that a regression shows.

The counts are of the whole HTTP call (signature check, retry check, locks, ledger posting,
the stored answer). Inside a test the outer transaction is a savepoint (SAVEPOINT and
RELEASE count as BEGIN and COMMIT do in production), and the provider's game house account
is looked up each time, since it is only remembered once its transaction commits.
"""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from tests.wallets.factories import PlayerFactory, fund
from tests.wallets.game_factories import make_provider
from wallets import game_services

pytestmark = pytest.mark.django_db

BET_QUERIES = 14
WIN_QUERIES = 13


@pytest.fixture
def studio():
    return make_provider()


@pytest.fixture
def player():
    player = PlayerFactory()
    fund(player, "100.00")
    return player


def _warm_up(studio, player):
    """The first call of a player and provider creates the house account and the round."""
    assert studio.bet(player, "1.00", round_id="warm-up").status_code == 200


def test_a_bet_costs_at_most_its_pinned_number_of_queries(
    studio, player, django_assert_max_num_queries
):
    _warm_up(studio, player)
    token = studio.session(player, "EUR")
    with django_assert_max_num_queries(BET_QUERIES):
        response = studio.bet(player, "5.00", round_id="r-1", session_token=token)
    assert response.status_code == 200, response.json()
    assert response.json()["balance"] == "94.00"


def test_a_win_that_closes_the_round_costs_at_most_its_pinned_number_of_queries(
    studio, player, django_assert_max_num_queries
):
    _warm_up(studio, player)
    studio.bet(player, "5.00", round_id="r-1")
    with django_assert_max_num_queries(WIN_QUERIES):
        response = studio.win(player, "12.50", round_id="r-1", round_closed=True)
    assert response.status_code == 200, response.json()
    assert response.json()["balance"] == "106.50"


def test_a_retried_bet_is_answered_without_locking_anything(studio, player):
    _warm_up(studio, player)
    token = studio.session(player, "EUR")
    first = studio.bet(player, "5.00", tx="b-1", round_id="r-1", session_token=token)
    with CaptureQueriesContext(connection) as queries:
        again = studio.bet(player, "5.00", tx="b-1", round_id="r-1", session_token=token)
    assert again.json() == first.json()
    assert again.headers["X-Idempotent-Replay"] == "true"
    # The provider, the player with the recorded answer, then the stored row for the body.
    assert len(queries) == 3
    assert not any("FOR " in q["sql"] or "INSERT" in q["sql"] for q in queries.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_a_house_account_created_by_a_rolled_back_transaction_is_not_remembered(studio):
    game_services._houses.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        game_services._house(studio.provider, "EUR")
        raise RuntimeError("the call failed after the house account was created")
    assert game_services._houses == {}
    with transaction.atomic():
        house = game_services._house(studio.provider, "EUR")
    assert list(game_services._houses.values()) == [house]
    assert game_services._house(studio.provider, "EUR").pk == house.pk
