from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core import signing
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.wallets.factories import PlayerFactory, StaffFactory, fund, key
from wallets import services
from wallets.auth import issue_player_token
from wallets.models import Player

pytestmark = pytest.mark.django_db


def as_player(player) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_player_token(player)}")
    return client


def as_casino_server(*perms) -> APIClient:
    user = StaffFactory()
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="wallets", codename__in=perms)
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_player_reads_balances_per_currency():
    player = PlayerFactory()
    fund(player, "100.00", "EUR")
    fund(player, "0.00500000", "BTC")
    services.hold_withdrawal(player=player, currency="EUR", amount="30.00", idempotency_key=key())

    response = as_player(player).get(f"/api/v1/players/{player.external_id}/balances")

    assert response.status_code == 200
    assert response.json() == [
        {
            "currency": "BTC",
            "cash": "0.00500000",
            "bonus": "0.00000000",
            "held": "0.00000000",
            "withdrawable": "0.00500000",
        },
        {
            "currency": "EUR",
            "cash": "70.00",
            "bonus": "0.00",
            "held": "30.00",
            "withdrawable": "70.00",
        },
    ]


def test_player_statement_lists_entries_with_balance_after_newest_first():
    player = PlayerFactory()
    fund(player, "100.00")
    services.debit_bet(player=player, currency="EUR", amount="10.00", idempotency_key=key())
    services.credit_win(player=player, currency="EUR", amount="25.50", idempotency_key=key())

    body = as_player(player).get(f"/api/v1/players/{player.external_id}/statement").json()

    assert body["count"] == 3
    lines = [(r["kind"], r["amount"], r["balance_after"]) for r in body["results"]]
    assert lines == [
        ("win", "25.50", "115.50"),
        ("bet", "-10.00", "90.00"),
        ("deposit", "100.00", "100.00"),
    ]


def test_statement_filters_by_kind_currency_and_date():
    player = PlayerFactory()
    fund(player, "100.00")
    fund(player, "1.00", "USD")
    services.debit_bet(player=player, currency="EUR", amount="10.00", idempotency_key=key())
    client = as_player(player)
    url = f"/api/v1/players/{player.external_id}/statement"

    assert client.get(url, {"kind": "bet"}).json()["count"] == 1
    assert client.get(url, {"currency": "USD"}).json()["count"] == 1
    tomorrow = (timezone.now() + timedelta(days=1)).isoformat()
    assert client.get(url, {"created_from": tomorrow}).json()["count"] == 0
    assert client.get(url, {"created_to": tomorrow}).json()["count"] == 3


def test_statement_rejects_a_malformed_filter_with_a_json_error():
    player = PlayerFactory()
    response = as_player(player).get(
        f"/api/v1/players/{player.external_id}/statement", {"created_from": "yesterday"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert "created_from" in response.json()["error"]["details"]


def test_statement_is_paginated():
    player = PlayerFactory()
    for _ in range(55):
        fund(player, "1.00")
    body = as_player(player).get(f"/api/v1/players/{player.external_id}/statement").json()
    assert body["count"] == 55 and len(body["results"]) == 50 and body["next"]


@pytest.mark.parametrize("endpoint", ["balances", "statement"])
def test_player_cannot_read_another_players_wallet(endpoint):
    alice, bob = PlayerFactory(), PlayerFactory()
    fund(bob, "100.00")
    response = as_player(alice).get(f"/api/v1/players/{bob.external_id}/{endpoint}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "100" not in response.content.decode()


@pytest.mark.parametrize("endpoint", ["balances", "statement"])
def test_anonymous_and_forged_tokens_are_refused_with_401(endpoint):
    player = PlayerFactory()
    url = f"/api/v1/players/{player.external_id}/{endpoint}"
    anonymous = APIClient().get(url)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_player_token(player)}x")
    assert forged.get(url).status_code == 401


def test_expired_player_token_is_refused(settings):
    player = PlayerFactory()
    token = issue_player_token(player)
    settings.PLAYER_TOKEN_TTL_SECONDS = -1
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get(f"/api/v1/players/{player.external_id}/balances")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Player token expired."


def test_token_signed_for_another_purpose_is_refused():
    player = PlayerFactory()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {signing.dumps({'player': player.pk})}")
    assert client.get(f"/api/v1/players/{player.external_id}/balances").status_code == 401


def test_casino_server_registers_a_player_and_issues_a_token_that_works():
    server = as_casino_server("add_player", "change_player")
    response = server.post(
        "/api/v1/players",
        {"external_id": "casino-42", "email": "p42@example.com", "country": "mt"},
        format="json",
    )
    assert response.status_code == 200
    assert Player.objects.get(external_id="casino-42").country == "MT"

    issued = server.post("/api/v1/players/casino-42/token")
    assert issued.status_code == 201
    player_client = APIClient()
    player_client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.json()['token']}")
    assert player_client.get("/api/v1/players/casino-42/balances").status_code == 200


def test_registering_again_updates_the_profile_not_a_second_player():
    server = as_casino_server("add_player")
    server.post("/api/v1/players", {"external_id": "c-1", "email": "a@example.com"}, format="json")
    server.post("/api/v1/players", {"external_id": "c-1", "email": "b@example.com"}, format="json")
    assert Player.objects.filter(external_id="c-1").get().email == "b@example.com"


def test_bad_registration_is_a_400_and_writes_nothing():
    server = as_casino_server("add_player")
    response = server.post(
        "/api/v1/players", {"external_id": "c-2", "country": "Malta"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["country"]
    assert not Player.objects.filter(external_id="c-2").exists()


def test_a_player_or_an_unprivileged_staff_user_cannot_use_server_endpoints():
    player = PlayerFactory()
    assert as_player(player).post("/api/v1/players", {"external_id": "x"}).status_code == 403
    assert as_casino_server().post(f"/api/v1/players/{player.external_id}/token").status_code == 403


def test_staff_with_view_permission_reads_any_players_balances():
    player = PlayerFactory()
    fund(player, "12.34")
    body = (
        as_casino_server("view_player").get(f"/api/v1/players/{player.external_id}/balances").json()
    )
    assert body[0]["cash"] == "12.34"
    assert Decimal(body[0]["withdrawable"]) == Decimal("12.34")


def test_openapi_schema_and_docs_are_served():
    client = APIClient()
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/players/{external_id}/statement" in schema.content
    assert client.get("/api/docs/").status_code == 200
