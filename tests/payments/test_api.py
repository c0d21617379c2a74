from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from compliance.models import KycLevel
from payments import services
from payments.models import Deposit, PayoutInstrument, Withdrawal
from tests.payments.factories import (
    cash,
    fund,
    held,
    key,
    make_player,
    player_client,
    without_minimal_play_rule,
)

pytestmark = pytest.mark.django_db(transaction=True)


def post_deposit(client, body, idempotency_key):
    return client.post(
        "/api/v1/deposits", body, format="json", HTTP_IDEMPOTENCY_KEY=idempotency_key
    )


BODY = {"method": "card", "amount": "10.01", "currency": "EUR"}


def test_same_idempotency_key_returns_the_same_deposit_and_a_different_body_is_409(sandbox):
    player = make_player()
    client = player_client(player)
    idem = key()
    first = post_deposit(client, BODY, idem)
    again = post_deposit(client, BODY, idem)
    conflict = post_deposit(client, {**BODY, "amount": "10.02"}, idem)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["reference"] == first.json()["reference"]
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert Deposit.objects.count() == 1
    assert cash(player) == Decimal("10.01")


def test_deposit_needs_an_idempotency_key_and_a_valid_amount(sandbox):
    client = player_client(make_player())
    missing = client.post("/api/v1/deposits", BODY, format="json")
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "bad_request")
    precise = post_deposit(client, {**BODY, "amount": "10.001"}, key())
    assert (precise.status_code, precise.json()["error"]["code"]) == (400, "bad_precision")
    unknown = post_deposit(client, {**BODY, "method": "cheque"}, key())
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "method_unavailable")
    wrong_currency = post_deposit(client, {**BODY, "currency": "BTC"}, key())
    assert wrong_currency.json()["error"]["code"] == "method_unavailable"
    assert not Deposit.objects.exists()


def test_compliance_refusal_answers_403_and_writes_nothing(sandbox):
    player = make_player(level=KycLevel.NONE)
    response = post_deposit(player_client(player), BODY, key())
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "payment_refused"
    assert "kyc_required" in response.json()["error"]["details"]["reasons"]
    assert not Deposit.objects.exists()


def test_players_see_only_their_own_deposits(sandbox):
    alice, bob = make_player(), make_player()
    reference = post_deposit(player_client(alice), BODY, key()).json()["reference"]
    assert [
        d["reference"] for d in player_client(alice).get("/api/v1/deposits").json()["results"]
    ] == [reference]
    assert player_client(bob).get("/api/v1/deposits").json()["results"] == []
    assert player_client(bob).get(f"/api/v1/deposits/{reference}").status_code == 404
    status = player_client(alice).get(f"/api/v1/deposits/{reference}").json()
    assert (status["status"], status["amount"], status["amount_received"]) == (
        "succeeded",
        "10.01",
        "10.01",
    )
    assert APIClient().get("/api/v1/deposits").status_code == 401


def test_payout_instruments_are_validated(sandbox):
    client = player_client(make_player())
    bad_iban = client.post(
        "/api/v1/payout-instruments",
        {"kind": "iban", "identifier": "DE89 3704 0044 0532 0130 01", "holder_name": "A"},
        format="json",
    )
    assert (bad_iban.status_code, bad_iban.json()["error"]["code"]) == (400, "invalid_instrument")
    pan = client.post(
        "/api/v1/payout-instruments",
        {"kind": "card_token", "identifier": "4111111111111111"},
        format="json",
    )
    assert pan.status_code == 400
    wrong_network = client.post(
        "/api/v1/payout-instruments",
        {
            "kind": "crypto",
            "identifier": "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            "network": "ethereum",
        },
        format="json",
    )
    assert wrong_network.status_code == 400
    good = client.post(
        "/api/v1/payout-instruments",
        {
            "kind": "crypto",
            "identifier": "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            "network": "bitcoin",
        },
        format="json",
    )
    assert good.status_code == 201
    assert good.json()["provider"] == "sandbox-crypto"
    assert PayoutInstrument.objects.count() == 1


def test_withdrawal_in_review_can_be_cancelled_by_its_player_only(sandbox):
    player, other = make_player(), make_player()
    fund(player, "2000.00")
    client = player_client(player)
    instrument = client.post(
        "/api/v1/payout-instruments",
        {"kind": "iban", "identifier": "DE89 3704 0044 0532 0130 00", "holder_name": "A Player"},
        format="json",
    ).json()
    created = client.post(
        "/api/v1/withdrawals",
        {"instrument": instrument["id"], "amount": "900.00", "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert created.status_code == 201
    reference = created.json()["reference"]
    assert created.json()["status"] == "in_review"
    assert held(player) == Decimal("900.00")

    assert player_client(other).post(f"/api/v1/withdrawals/{reference}/cancel").status_code == 404
    cancelled = client.post(f"/api/v1/withdrawals/{reference}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/withdrawals/{reference}/cancel")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "invalid_transition")
    assert (cash(player), held(player)) == (Decimal("2000.00"), Decimal(0))


def test_withdrawal_to_another_players_instrument_is_refused(sandbox):
    without_minimal_play_rule()
    player, other = make_player(), make_player()
    fund(player, "100.00")
    theirs = services.add_payout_instrument(
        player=other, kind="card_token", identifier="tok_other_123"
    )
    response = player_client(player).post(
        "/api/v1/withdrawals",
        {"instrument": theirs.pk, "amount": "10.00", "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 400
    assert not Withdrawal.objects.exists()
