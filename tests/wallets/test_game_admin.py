"""The operator console for game providers, rounds and bonuses."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from tests.wallets.factories import PlayerFactory, fund
from tests.wallets.game_factories import make_provider
from wallets import game_services
from wallets.models import Account, Bonus, GameProvider, JournalEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client):
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-not-used")
    client.force_login(user)
    client.user = user
    return client


def test_creating_a_provider_shows_its_secret_once_and_never_again(operator_client):
    response = operator_client.post(
        "/admin/wallets/gameprovider/add/",
        {"name": "Studio", "code": "studio-x", "currencies": ["EUR", "GBP"], "is_enabled": "on"},
    )
    assert response.status_code == 200
    provider = GameProvider.objects.get(code="studio-x")
    secret = game_services.provider_secret(provider)
    assert secret.encode() in response.content
    assert provider.key_id.encode() in response.content
    assert {c.code for c in provider.currencies.all()} == {"EUR", "GBP"}
    for page in (
        "/admin/wallets/gameprovider/",
        f"/admin/wallets/gameprovider/{provider.pk}/change/",
    ):
        content = operator_client.get(page).content
        assert secret.encode() not in content
        assert provider.secret_hint.encode() in content
    # Neither a message cookie nor the session carries it to the next page.
    assert secret not in str(response.cookies)


def test_rotating_a_secret_shows_the_new_one_once(operator_client):
    studio = make_provider()
    response = operator_client.post(
        "/admin/wallets/gameprovider/",
        {"action": "rotate_secret", "_selected_action": [studio.provider.pk]},
    )
    studio.provider.refresh_from_db()
    new_secret = game_services.provider_secret(studio.provider)
    assert new_secret != studio.secret
    assert new_secret.encode() in response.content


def test_rounds_show_their_bets_wins_and_rollbacks(operator_client):
    studio = make_provider()
    player = PlayerFactory()
    fund(player, "50.00")
    studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    studio.win(player, "3.00", tx="w-1", round_id="r-1")
    studio.bet(player, "10.00", tx="b-2", round_id="r-2")
    studio.rollback(player, bet_tx="b-2", round_id="r-2", tx="rb-1")
    round_page = operator_client.get("/admin/wallets/gameround/?q=r-1")
    assert round_page.status_code == 200
    from wallets.models import GameRound

    game_round = GameRound.objects.get(round_id="r-1")
    detail = operator_client.get(f"/admin/wallets/gameround/{game_round.pk}/change/").content
    assert b"b-1" in detail and b"w-1" in detail
    listing = operator_client.get("/admin/wallets/gametransaction/?q=rb-1")
    assert b"rb-1" in listing.content


def test_operator_grants_and_cancels_a_bonus_through_the_services(operator_client):
    player = PlayerFactory(country="GB")
    fund(player, "10.00")
    form = operator_client.get("/admin/wallets/bonus/add/")
    assert form.status_code == 200
    grant = {
        "player": player.pk,
        "currency": "EUR",
        "amount": "25.00",
        "wagering_multiplier": "35",
        "max_bet": "5.00",
        "expires_at": (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%d %H:%M"),
        "reason": "VIP welcome",
        "idempotency_key": "admin-grant-test",
    }
    response = operator_client.post("/admin/wallets/bonus/add/", grant)
    assert response.status_code == 302
    bonus = Bonus.objects.get()
    assert (bonus.applied_multiplier, bonus.granted_by) == (Decimal(10), operator_client.user)
    # A double submit of the same form grants once.
    operator_client.post("/admin/wallets/bonus/add/", grant)
    assert Bonus.objects.count() == 1
    assert b"250.00" in operator_client.get("/admin/wallets/bonus/").content

    operator_client.post(
        "/admin/wallets/bonus/",
        {"action": "cancel", "_selected_action": [bonus.pk], "apply": "1", "reason": "abuse"},
    )
    bonus.refresh_from_db()
    assert (bonus.status, bonus.closed_by) == (Bonus.Status.FORFEITED, operator_client.user)
    assert bonus.closing_entry.kind == JournalEntry.Kind.BONUS_FORFEIT
    assert Account.objects.get(owner=player, kind="player_bonus").balance == 0


def test_a_refused_grant_is_shown_on_the_form_and_writes_nothing(operator_client):
    player = PlayerFactory()
    response = operator_client.post(
        "/admin/wallets/bonus/add/",
        {
            "player": player.pk,
            "currency": "JPY",
            "amount": "10.5",
            "wagering_multiplier": "35",
            "expires_at": (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%d %H:%M"),
            "reason": "x",
            "idempotency_key": "k",
        },
    )
    assert response.status_code == 200
    assert b"JPY allows 0 decimals" in response.content
    assert not Bonus.objects.exists()
