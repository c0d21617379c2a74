"""The seamless game-wallet API, called as a provider would: signed HTTP requests."""

import time
from decimal import Decimal

import pytest
from django.test import override_settings

from tests.wallets.factories import PlayerFactory, StaffFactory, fund
from tests.wallets.game_factories import make_provider, new_id
from wallets import errors, game_services, selectors, services, signals
from wallets.models import Account, GameRound, GameTransaction, JournalEntry

pytestmark = pytest.mark.django_db
Kind = Account.Kind


def cash(player, currency="EUR") -> Decimal:
    account = Account.objects.filter(owner=player, kind=Kind.PLAYER_CASH, currency_id=currency)
    return account.get().balance if account.exists() else Decimal(0)


def house(studio, currency="EUR") -> Decimal:
    account = Account.objects.get(
        kind=Kind.GAME_HOUSE, currency_id=currency, system_code=studio.provider.code
    )
    return selectors.account_balance(account)


def error_code(response) -> str:
    return response.json()["error"]["code"]


def assert_ledger_clean():
    assert selectors.ledger_problems() == []


@pytest.fixture
def studio():
    return make_provider()


@pytest.fixture
def player():
    player = PlayerFactory()
    fund(player, "100.00")
    return player


def snapshot():
    return (
        JournalEntry.objects.count(),
        GameTransaction.objects.count(),
        GameRound.objects.count(),
    )


# --- balance, bet, win, rollback -------------------------------------------------------------


def test_balance_returns_cash_plus_bonus(studio, player):
    response = studio.call("balance", {"player_id": player.external_id, "currency": "EUR"})
    assert response.status_code == 200
    assert response.json() == {
        "player_id": player.external_id,
        "currency": "EUR",
        "balance": "100.00",
        "cash": "100.00",
        "bonus": "0.00",
    }


def test_bet_debits_cash_into_the_providers_game_house(studio, player):
    response = studio.bet(player, "7.25", tx="b-1", round_id="r-1", game_id="slot-9")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["balance"], body["cash"], body["bonus"]) == ("92.75", "92.75", "0.00")
    assert (body["transaction_id"], body["round_id"]) == ("b-1", "r-1")
    assert (body["cash_amount"], body["bonus_amount"]) == ("7.25", "0.00")
    assert cash(player) == Decimal("92.75")
    assert house(studio) == Decimal("7.25")
    bet = GameTransaction.objects.get(transaction_id="b-1")
    assert bet.entry.kind == JournalEntry.Kind.BET
    assert bet.entry.idempotency_key == f"game:{studio.provider.code}:b-1"
    assert bet.round.game_id == "slot-9"
    assert_ledger_clean()


def test_win_credits_cash_and_can_close_the_round(studio, player):
    studio.bet(player, "10.00", round_id="r-1")
    response = studio.win(player, "25.50", round_id="r-1", round_closed=True)
    assert response.status_code == 200, response.json()
    assert response.json()["balance"] == "115.50"
    assert cash(player) == Decimal("115.50")
    assert house(studio) == Decimal("-15.50")
    assert GameRound.objects.get(round_id="r-1").status == GameRound.Status.CLOSED
    assert_ledger_clean()


def test_zero_win_moves_nothing_but_is_recorded(studio, player):
    studio.bet(player, "10.00", round_id="r-1")
    entries = JournalEntry.objects.count()
    response = studio.win(player, "0", round_id="r-1", round_closed=True)
    assert response.status_code == 200
    assert response.json()["balance"] == "90.00"
    assert JournalEntry.objects.count() == entries
    assert GameTransaction.objects.filter(kind="win", amount=0, entry=None).count() == 1


def test_rollback_returns_the_stake(studio, player):
    studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    response = studio.rollback(player, bet_tx="b-1", round_id="r-1", tx="rb-1")
    assert response.status_code == 200, response.json()
    assert response.json()["outcome"] == "rolled_back"
    assert response.json()["balance"] == "100.00"
    assert cash(player) == Decimal("100.00")
    assert house(studio) == Decimal(0)
    bet = GameTransaction.objects.get(transaction_id="b-1")
    assert bet.status == GameTransaction.Status.ROLLED_BACK
    reversal = GameTransaction.objects.get(transaction_id="rb-1").entry
    assert reversal.kind == JournalEntry.Kind.BET_REVERSAL
    assert reversal.reverses == bet.entry
    assert_ledger_clean()


# --- idempotency -------------------------------------------------------------------------------


def test_bet_retry_returns_the_original_answer_even_after_the_balance_moved(studio, player):
    first = studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    studio.bet(player, "5.00", round_id="r-2")
    retry = studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    assert retry.status_code == 200
    assert retry.json() == first.json()
    assert retry.json()["balance"] == "90.00"
    assert retry.headers["X-Idempotent-Replay"] == "true"
    assert cash(player) == Decimal("85.00")
    assert GameTransaction.objects.filter(transaction_id="b-1").count() == 1


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "11.00"},
        {"round_id": "r-other"},
        {"currency": "GBP"},
    ],
)
def test_same_transaction_id_with_a_different_request_is_a_duplicate(studio, player, change):
    fund(player, "50.00", currency="GBP")
    studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    before = snapshot()
    body = {"amount": "10.00", "tx": "b-1", "round_id": "r-1", "currency": "EUR"} | change
    amount = body.pop("amount")
    response = studio.bet(player, amount, **body)
    assert response.status_code == 409
    assert error_code(response) == "duplicate_transaction"
    assert snapshot() == before
    assert cash(player) == Decimal("90.00")


def test_same_transaction_id_for_another_player_is_a_duplicate(studio, player):
    other = PlayerFactory()
    fund(other, "50.00")
    studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    response = studio.bet(other, "10.00", tx="b-1", round_id="r-1")
    assert error_code(response) == "duplicate_transaction"
    assert cash(other) == Decimal("50.00")


def test_a_bets_id_reused_for_a_win_is_a_duplicate(studio, player):
    studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    response = studio.win(player, "10.00", tx="b-1", round_id="r-1")
    assert error_code(response) == "duplicate_transaction"
    assert cash(player) == Decimal("90.00")


def test_win_and_rollback_retries_return_the_original_answer(studio, player):
    studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    studio.bet(player, "10.00", tx="b-2", round_id="r-2")
    win = studio.win(player, "30.00", tx="w-1", round_id="r-1")
    rollback = studio.rollback(player, bet_tx="b-2", round_id="r-2", tx="rb-1")
    assert studio.win(player, "30.00", tx="w-1", round_id="r-1").json() == win.json()
    again = studio.rollback(player, bet_tx="b-2", round_id="r-2", tx="rb-1")
    assert again.json() == rollback.json()
    assert cash(player) == Decimal("120.00")
    assert_ledger_clean()


# --- rollback ordering -----------------------------------------------------------------------


def test_rollback_before_the_bet_is_recorded_and_the_late_bet_moves_nothing(studio, player):
    response = studio.rollback(player, bet_tx="b-late", round_id="r-1", tx="rb-1")
    assert response.status_code == 200
    assert response.json()["outcome"] == "bet_not_found"
    assert response.json()["balance"] == "100.00"
    entries = JournalEntry.objects.count()

    late = studio.bet(player, "10.00", tx="b-late", round_id="r-1")
    assert late.status_code == 409
    assert error_code(late) == "transaction_rolled_back"
    assert late.json()["error"]["details"]["balance"] == "100.00"
    assert cash(player) == Decimal("100.00")
    assert JournalEntry.objects.count() == entries
    tombstone = GameTransaction.objects.get(transaction_id="b-late")
    assert (tombstone.status, tombstone.entry) == (GameTransaction.Status.TOMBSTONE, None)
    assert_ledger_clean()


def test_win_after_the_bet_was_rolled_back_is_refused(studio, player):
    studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    studio.rollback(player, bet_tx="b-1", round_id="r-1")
    before = snapshot()
    response = studio.win(player, "20.00", round_id="r-1")
    assert response.status_code == 404
    assert error_code(response) == "transaction_not_found"
    assert snapshot() == before
    assert cash(player) == Decimal("100.00")


def test_win_naming_a_bet_that_does_not_stand_is_refused(studio, player):
    studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    response = studio.win(player, "20.00", round_id="r-1", bet_transaction_id="b-unknown")
    assert error_code(response) == "transaction_not_found"
    assert cash(player) == Decimal("90.00")


def test_win_for_an_unknown_round_is_refused(studio, player):
    response = studio.win(player, "20.00", round_id="never")
    assert error_code(response) == "transaction_not_found"
    assert response.json()["error"]["details"]["balance"] == "100.00"


def test_rollback_after_a_win_in_the_round_is_refused(studio, player):
    studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    studio.win(player, "5.00", round_id="r-1")
    before = snapshot()
    response = studio.rollback(player, bet_tx="b-1", round_id="r-1")
    assert response.status_code == 409
    assert error_code(response) == "bet_settled"
    assert snapshot() == before
    assert cash(player) == Decimal("95.00")


def test_second_rollback_of_a_rolled_back_bet_succeeds_and_moves_nothing(studio, player):
    studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    studio.rollback(player, bet_tx="b-1", round_id="r-1", tx="rb-1")
    entries = JournalEntry.objects.count()
    response = studio.rollback(player, bet_tx="b-1", round_id="r-1", tx="rb-2")
    assert response.status_code == 200
    assert response.json()["outcome"] == "already_rolled_back"
    assert JournalEntry.objects.count() == entries
    assert cash(player) == Decimal("100.00")


def test_rollback_naming_a_win_is_refused(studio, player):
    studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    studio.win(player, "5.00", tx="w-1", round_id="r-1")
    response = studio.rollback(player, bet_tx="w-1", round_id="r-1")
    assert error_code(response) == "transaction_not_found"


# --- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    [
        {"secret": "not-the-secret"},
        {"offset": -301},
        {"offset": 301},
        {"key_id": "unknown-key"},
    ],
    ids=["bad-signature", "expired", "from-the-future", "unknown-key"],
)
def test_bad_or_stale_signatures_are_refused_and_move_nothing(studio, player, tamper):
    body = {
        "player_id": player.external_id,
        "currency": "EUR",
        "amount": "10.00",
        "transaction_id": "b-1",
        "round_id": "r-1",
        "session_token": studio.session(player),
    }
    if "offset" in tamper:
        tamper = {"timestamp": int(time.time()) + tamper["offset"]}
    before = snapshot()
    response = studio.call("bet", body, **tamper)
    assert response.status_code == 401
    assert error_code(response) == "invalid_signature"
    assert snapshot() == before
    assert cash(player) == Decimal("100.00")


def test_a_body_changed_after_signing_is_refused(studio, player):
    raw = b'{"player_id": "%s", "currency": "EUR"}' % player.external_id.encode()
    ts = str(int(time.time()))
    signature = game_services.signature_for(secret=studio.secret, timestamp=ts, body=raw)
    response = studio.client.post(
        "/api/v1/game-wallet/balance",
        data=raw.replace(b"EUR", b"GBP"),
        content_type="application/json",
        headers={"X-Game-Key": studio.provider.key_id, "X-Game-Timestamp": ts,
                 "X-Game-Signature": signature},
    )  # fmt: skip
    assert error_code(response) == "invalid_signature"


def test_missing_signature_headers_are_refused(studio, player):
    response = studio.client.post(
        "/api/v1/game-wallet/balance",
        data={"player_id": player.external_id, "currency": "EUR"},
        content_type="application/json",
    )
    assert response.status_code == 401
    assert error_code(response) == "invalid_signature"


def test_a_disabled_provider_is_refused(studio, player):
    studio.provider.is_enabled = False
    studio.provider.save()
    response = studio.bet(player, "10.00")
    assert response.status_code == 403
    assert error_code(response) == "provider_disabled"
    assert cash(player) == Decimal("100.00")


def test_a_rotated_secret_stops_the_old_one(studio, player):
    old = studio.secret
    studio.secret = game_services.rotate_provider_secret(provider=studio.provider)
    assert studio.secret != old
    body = {"player_id": player.external_id, "currency": "EUR"}
    assert studio.call("balance", body).status_code == 200
    assert error_code(studio.call("balance", body, secret=old)) == "invalid_signature"


# --- refusals ----------------------------------------------------------------------------------


def test_bet_over_the_balance_is_refused_with_the_balance(studio, player):
    before = snapshot()
    response = studio.bet(player, "100.01")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "insufficient_funds"
    assert error["details"]["balance"] == "100.00"
    assert error["details"]["required"] == "100.01"
    assert error["message"] == "Cash and bonus hold 100.00 EUR; 100.01 needed."
    assert snapshot() == before


def test_unknown_player_is_refused(studio):
    response = studio.call("balance", {"player_id": "nobody", "currency": "EUR"})
    assert response.status_code == 404
    assert error_code(response) == "player_not_found"


def test_currency_the_provider_does_not_offer_is_a_mismatch(studio, player):
    fund(player, "10.00", currency="USD")
    response = studio.bet(player, "1.00", currency="USD", session_token="irrelevant")
    assert response.status_code == 409
    assert error_code(response) == "currency_mismatch"
    assert cash(player, "USD") == Decimal("10.00")


def test_bet_in_another_currency_than_the_round_is_a_mismatch(studio, player):
    fund(player, "10.00", currency="GBP")
    studio.bet(player, "1.00", round_id="r-1")
    response = studio.bet(player, "1.00", round_id="r-1", currency="GBP")
    assert error_code(response) == "currency_mismatch"
    assert cash(player, "GBP") == Decimal("10.00")


@pytest.mark.parametrize(
    "amount", ["1.001", "0", "-5.00", "abc", "", "NaN", "1e25", "1e300", "1000000000000000"]
)
def test_bad_amounts_are_bad_requests(studio, player, amount):
    before = snapshot()
    response = studio.bet(player, amount)
    assert response.status_code == 400
    assert error_code(response) == "bad_request"
    assert response.json()["error"]["details"]["balance"] == "100.00"
    assert snapshot() == before


def test_win_amount_with_too_many_decimals_is_a_bad_request(studio, player):
    studio.bet(player, "10.00", round_id="r-1")
    response = studio.win(player, "0.001", round_id="r-1")
    assert error_code(response) == "bad_request"
    assert response.json()["error"]["details"]["balance"] == "90.00"


def test_a_body_that_is_not_json_is_a_bad_request(studio):
    raw = b"{not json"
    ts = str(int(time.time()))
    response = studio.client.post(
        "/api/v1/game-wallet/bet",
        data=raw,
        content_type="application/json",
        headers={
            "X-Game-Key": studio.provider.key_id,
            "X-Game-Timestamp": ts,
            "X-Game-Signature": game_services.signature_for(
                secret=studio.secret, timestamp=ts, body=raw
            ),
        },
    )
    assert response.status_code == 400
    assert error_code(response) == "bad_request"


def test_missing_fields_are_bad_requests(studio, player):
    response = studio.call("win", {"player_id": player.external_id, "currency": "EUR"})
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert set(details["fields"]) == {"transaction_id", "round_id", "amount"}


def test_closed_round_refuses_further_bets_and_wins(studio, player):
    studio.bet(player, "10.00", round_id="r-1")
    studio.win(player, "0", round_id="r-1", round_closed=True)
    before = snapshot()
    bet = studio.bet(player, "10.00", round_id="r-1")
    win = studio.win(player, "10.00", round_id="r-1")
    assert (bet.status_code, error_code(bet)) == (409, "round_closed")
    assert error_code(win) == "round_closed"
    assert snapshot() == before
    assert cash(player) == Decimal("90.00")


def test_bet_in_another_players_round_is_refused(studio, player):
    other = PlayerFactory()
    fund(other, "50.00")
    studio.bet(player, "10.00", round_id="r-1")
    response = studio.bet(other, "10.00", round_id="r-1")
    assert error_code(response) == "bad_request"
    assert cash(other) == Decimal("50.00")


def test_frozen_player_cannot_bet_but_wins_and_rollbacks_are_paid(studio, player):
    studio.bet(player, "10.00", tx="b-1", round_id="r-1")
    studio.bet(player, "10.00", tx="b-2", round_id="r-2")
    services.freeze_player(player=player, actor=StaffFactory(), reason="AML review")
    before = snapshot()
    refused = studio.bet(player, "10.00")
    assert (refused.status_code, error_code(refused)) == (403, "player_blocked")
    assert snapshot() == before
    assert studio.win(player, "15.00", round_id="r-1").status_code == 200
    assert studio.rollback(player, bet_tx="b-2", round_id="r-2").status_code == 200
    assert cash(player) == Decimal("105.00")
    assert_ledger_clean()


def test_a_compliance_refusal_through_the_signal_blocks_the_bet(studio, player):
    class SelfExcluded(errors.DomainError):
        code = "self_excluded"

    seen = []

    def refuse(sender, *, player, currency, amount, **kwargs):
        seen.append((player.pk, currency, amount))
        raise SelfExcluded("The player is self-excluded.")

    signals.bet_requested.connect(refuse)
    try:
        before = snapshot()
        response = studio.bet(player, "10.00")
    finally:
        signals.bet_requested.disconnect(refuse)
    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["code"], error["details"]["refused_by"]) == ("player_blocked", "self_excluded")
    assert seen == [(player.pk, "EUR", Decimal("10.00"))]
    assert snapshot() == before
    assert cash(player) == Decimal("100.00")


def test_bet_needs_a_live_session_but_win_is_paid_after_it_ended(studio, player):
    studio.bet(player, "10.00", round_id="r-1")
    with override_settings(GAME_SESSION_TTL_SECONDS=-1):
        expired = studio.bet(player, "10.00", round_id="r-2")
        win = studio.win(player, "4.00", round_id="r-1")
    assert (expired.status_code, error_code(expired)) == (403, "session_invalid")
    assert win.status_code == 200
    assert cash(player) == Decimal("94.00")


def test_another_players_session_token_does_not_allow_a_bet(studio, player):
    other = PlayerFactory()
    response = studio.bet(player, "10.00", session_token=studio.session(other))
    assert error_code(response) == "session_invalid"
    assert cash(player) == Decimal("100.00")


# --- casino side and contract ------------------------------------------------------------------


def test_casino_server_opens_a_game_session(studio, player, client):
    from django.contrib.auth.models import Permission
    from rest_framework.authtoken.models import Token

    staff = StaffFactory()
    staff.user_permissions.add(Permission.objects.get(codename="change_player"))
    token = Token.objects.create(user=staff)
    response = client.post(
        "/api/v1/game-wallet/sessions",
        data={"player_id": player.external_id, "provider": studio.provider.code, "currency": "EUR"},
        content_type="application/json",
        headers={"Authorization": f"Token {token.key}"},
    )
    assert response.status_code == 201, response.json()
    session = response.json()["session_token"]
    assert studio.bet(player, "1.00", session_token=session).status_code == 200


def test_provider_secret_is_stored_encrypted(studio):
    studio.provider.refresh_from_db()
    assert studio.secret not in studio.provider.secret_ciphertext
    assert studio.provider.secret_hint == f"…{studio.secret[-4:]}"
    assert game_services.provider_secret(studio.provider) == studio.secret


def test_schema_documents_the_game_wallet_endpoints_with_examples_and_error_codes(client):
    response = client.get("/api/schema/", headers={"Accept": "application/json"})
    schema = response.json()
    for endpoint in ("balance", "bet", "win", "rollback"):
        operation = schema["paths"][f"/api/v1/game-wallet/{endpoint}"]["post"]
        assert "invalid_signature" in operation["description"]
        assert operation["requestBody"]["content"]["application/json"]["examples"]
        assert operation["responses"]["200"]["content"]["application/json"]["examples"]
    bet = schema["paths"]["/api/v1/game-wallet/bet"]["post"]
    assert "insufficient_funds" in bet["responses"]["422"]["description"]
    assert "gameProviderSignature" in schema["components"]["securitySchemes"]


def test_every_documented_error_code_exists_in_the_services():
    from wallets import bonus_services
    from wallets.game_api import ERROR_CODES

    raised = {
        cls.code: cls.http_status
        for module in (game_services, bonus_services, errors)
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, errors.DomainError)
    }
    for http_status, code, _, _ in ERROR_CODES:
        assert raised[code] == http_status, code


def test_game_ids_are_recorded_per_provider(player):
    first, second = make_provider(), make_provider()
    assert first.bet(player, "1.00", tx="same-id").status_code == 200
    assert second.bet(player, "1.00", tx="same-id").status_code == 200
    assert cash(player) == Decimal("98.00")
    assert_ledger_clean()


def test_new_ids_helper_is_unique():
    assert new_id("x") != new_id("x")
