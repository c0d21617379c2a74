"""Throttles: per player, per casino server, per game provider, and failed authentications
per address; 429 in the error shape with Retry-After, counted in Redis in production."""

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from tests.api.helpers import as_casino_server, as_player, error
from tests.compliance.factories import make_player
from tests.wallets.game_factories import make_provider

pytestmark = pytest.mark.django_db


def rates(**overrides):
    return override_settings(
        REST_FRAMEWORK={
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {
                **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                **overrides,
            },
        }
    )


def assert_throttled(response):
    assert response.status_code == 429, response.content[:200]
    body = error(response)
    assert body["code"] == "throttled"
    retry_after = body["details"]["retry_after"]
    assert isinstance(retry_after, int) and 1 <= retry_after <= 60
    assert response["Retry-After"] == str(retry_after)


def test_a_player_over_their_rate_gets_429_and_another_player_does_not():
    player, other = make_player(), make_player()
    url = f"/api/v1/players/{player.external_id}/balances"
    with rates(player="3/minute"):
        client = as_player(player)
        assert [client.get(url).status_code for _ in range(3)] == [200, 200, 200]
        assert_throttled(client.get(url))
        # A fresh token of the same player shares the budget: it is per player, not per token.
        assert_throttled(as_player(player).get(url))
        other_url = f"/api/v1/players/{other.external_id}/balances"
        assert as_player(other).get(other_url).status_code == 200


def test_a_casino_server_over_its_rate_gets_429():
    player = make_player()
    server = as_casino_server("wallets.view_player")
    url = f"/api/v1/players/{player.external_id}/balances"
    with rates(casino_server="2/minute"):
        assert [server.get(url).status_code for _ in range(2)] == [200, 200]
        assert_throttled(server.get(url))
        assert as_casino_server("wallets.view_player").get(url).status_code == 200


def test_a_game_provider_over_its_rate_gets_429_in_the_wallet_error_shape():
    player = make_player()
    studio, other_studio = make_provider(), make_provider()
    body = {"player_id": player.external_id, "currency": "EUR"}
    with rates(game_provider="2/minute"):
        assert [studio.call("balance", body).status_code for _ in range(2)] == [200, 200]
        assert_throttled(studio.call("balance", body))
        assert other_studio.call("balance", body).status_code == 200


@pytest.mark.parametrize("kind", ["player_token", "server_token", "game_signature"])
def test_repeated_auth_failures_lock_the_address_out_even_with_good_credentials(kind):
    player = make_player()
    studio = make_provider()
    url = f"/api/v1/players/{player.external_id}/balances"
    body = {"player_id": player.external_id, "currency": "EUR"}

    def fail():
        if kind == "player_token":
            client = as_player(player)
            client.credentials(HTTP_AUTHORIZATION="Bearer forged")
            return client.get(url)
        if kind == "server_token":
            client = as_player(player)
            client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
            return client.get(url)
        return studio.call("balance", body, secret="wrong-secret")

    with rates(auth_failure="4/minute"):
        assert [fail().status_code for _ in range(4)] == [401] * 4
        # The budget is spent: refused before the credential is even looked at, so the
        # fifth guess cannot succeed, and valid credentials from the address wait too.
        assert_throttled(fail())
        assert_throttled(as_player(player).get(url))
        assert_throttled(studio.call("balance", body))
        assert error(fail())["details"]["retry_after"] >= 1


def test_good_credentials_do_not_spend_the_auth_failure_budget():
    player = make_player()
    url = f"/api/v1/players/{player.external_id}/balances"
    with rates(auth_failure="2/minute"):
        client = as_player(player)
        assert all(client.get(url).status_code == 200 for _ in range(5))


def test_the_throttle_counters_live_in_redis_when_a_cache_url_is_set():
    redis_url = settings.CELERY_BROKER_URL
    if not redis_url.startswith("redis://"):
        pytest.skip("needs the Redis the tests run against (CELERY_BROKER_URL)")
    redis_cache = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": "apihard-throttle-test",
        }
    }
    player = make_player()
    url = f"/api/v1/players/{player.external_id}/balances"
    server = redis.Redis.from_url(redis_url)

    def our_keys():
        # Only this test's prefix: the database is shared with the Celery broker.
        return server.keys(f"apihard-throttle-test:*{player.pk}")

    with override_settings(CACHES=redis_cache), rates(player="2/minute"):
        client = as_player(player)
        assert [client.get(url).status_code for _ in range(2)] == [200, 200]
        assert_throttled(client.get(url))
        assert our_keys(), "the player's throttle history is not in Redis"
    for stale in our_keys():
        server.delete(stale)


def test_429_and_503_are_documented_on_every_operation():
    schema = as_player(make_player()).get("/api/schema/?format=json").json()
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) > 20
    for path, method, operation in operations:
        for code in ("429", "503"):
            response = operation["responses"].get(code)
            assert response, f"{method.upper()} {path} does not document {code}"
            assert "Retry-After" in response["headers"]
            assert response["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
