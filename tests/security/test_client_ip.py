"""The player's address for the country checks: REMOTE_ADDR, unless the peer is one of the
trusted proxies, and then the hop just before them in X-Forwarded-For — never a value the
client wrote itself."""

import pytest
from django.test import RequestFactory, override_settings

from compliance.models import PaymentDecision
from payments import services
from payments.models import Deposit
from tests.payments.factories import key, make_player, player_client
from wallets.client_ip import client_ip

US, DE = "8.8.8.8", "85.214.0.1"  # countries in geoip2fast's offline database
PROXY, OTHER_PROXY = "10.0.0.5", "198.51.100.20"


def request(peer, forwarded=None):
    headers = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().post("/api/v1/deposits", **headers)


@override_settings(CLIENT_IP_TRUSTED_PROXIES=[])
def test_a_direct_client_is_its_peer_address_whatever_it_forwards():
    assert client_ip(request(DE)) == DE
    assert client_ip(request(DE, forwarded=US)) == DE


@override_settings(CLIENT_IP_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_through_one_trusted_proxy_the_client_is_the_address_the_proxy_saw():
    assert client_ip(request(PROXY, forwarded=US)) == US
    # The client wrote the left-most entry itself; the proxy appended what it saw.
    assert client_ip(request(PROXY, forwarded=f"1.2.3.4, {US}")) == US


@override_settings(CLIENT_IP_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_a_forwarded_header_from_an_untrusted_peer_is_ignored():
    assert client_ip(request(DE, forwarded=US)) == DE
    assert client_ip(request(DE, forwarded=f"{US}, {PROXY}")) == DE


@override_settings(CLIENT_IP_TRUSTED_PROXIES=["198.51.100.0/24", "10.0.0.0/8"])
def test_two_trusted_tiers_in_order_outermost_first():
    assert client_ip(request(PROXY, forwarded=f"1.2.3.4, {US}, {OTHER_PROXY}")) == US
    # The outer tier missing: the chain is not the one configured, so nothing is believed.
    assert client_ip(request(PROXY, forwarded=US)) == PROXY


@override_settings(CLIENT_IP_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_a_trusted_proxy_without_the_header_or_with_garbage_gives_its_own_address():
    assert client_ip(request(PROXY)) == PROXY
    assert client_ip(request(PROXY, forwarded="not an address")) == PROXY


# --- the country check of a deposit sees the same address ------------------------------------


def deposit_from(peer, forwarded=None):
    player = make_player(country="DE")
    headers = {"REMOTE_ADDR": peer, "HTTP_IDEMPOTENCY_KEY": key()}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    response = player_client(player).post(
        "/api/v1/deposits",
        {"method": "card", "amount": "10.00", "currency": "EUR"},
        format="json",
        **headers,
    )
    decision = PaymentDecision.objects.filter(player=player).latest("pk")
    return response, decision


@pytest.mark.django_db
@override_settings(CLIENT_IP_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_a_deposit_through_the_trusted_proxy_is_checked_against_the_players_address():
    services.ensure_sandbox_providers(base_url="http://127.0.0.1:9")
    response, decision = deposit_from(PROXY, forwarded=US)
    assert response.status_code == 403
    assert "blocked_jurisdiction" in response.json()["error"]["details"]["reasons"]
    assert decision.inputs["ip"] == US
    assert not Deposit.objects.exists()


@pytest.mark.django_db
@override_settings(CLIENT_IP_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_a_spoofed_forwarded_header_cannot_move_a_player_out_of_a_blocked_country():
    services.ensure_sandbox_providers(base_url="http://127.0.0.1:9")
    response, decision = deposit_from(US, forwarded=DE)
    assert response.status_code == 403
    assert decision.inputs["ip"] == US
    assert not Deposit.objects.exists()
