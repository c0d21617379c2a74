"""Every class of bad input answers 400 (or a JSON 404 for an unknown URL) and writes nothing.

The inputs come from issue 14's probes and issue 16's: exponents, over-long numbers, Unicode
and full-width digits, separators, signs, JSON numbers, whitespace, NUL and other control
characters, lone surrogates, invented countries, empty or absurd dates, day counts a calendar
cannot hold, non-JSON bodies on the game wallet.
"""

import json
import time

import pytest
from django.test import Client

from compliance.models import SelfExclusion
from tests.api.helpers import as_casino_server, as_player, error, written
from tests.compliance.factories import make_player
from tests.wallets.factories import fund, key
from tests.wallets.game_factories import BASE, make_provider, new_id
from wallets import game_services

pytestmark = pytest.mark.django_db

BAD_AMOUNTS = [
    "1e400",
    "1e30",
    "1e2",
    "1" * 27,
    "1" * 21,
    "\u0661\u0660",  # Arabic-Indic ten
    "\uff15.\uff10\uff10",  # full-width 5.00
    "1_0.00",
    " 5.00",
    "5.00 ",
    "+5",
    ".5",
    "5.",
    "-5.00",
    "0x10",
    "NaN",
    "Infinity",
    "5.00\x00",
    "0.000000001",
    "",
    10,
    10.5,
    True,
    [],
]
BAD_IDS = [
    "p-1 ",
    " p-1",
    "p\x00",
    "p\x01",
    "p\n",
    "p\u200b",  # zero-width space
    "x" * 200,
    5,
    "",
    None,
]


@pytest.fixture
def player():
    player = make_player()
    fund(player, "100.00")
    return player


def _assert_refused(response, before, code="bad_request"):
    assert response.status_code == 400, response.content[:300]
    assert error(response)["code"] == code
    assert written() == before


# --- amounts ------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
def test_deposit_and_withdrawal_refuse_a_malformed_amount(player, amount):
    client = as_player(player)
    before = written()
    for path in ("/api/v1/deposits", "/api/v1/withdrawals"):
        body = {"method": "card", "instrument": 1, "amount": amount, "currency": "EUR"}
        response = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key())
        _assert_refused(response, before)
        if "\x00" not in str(amount):  # NUL is refused by the parser, before any field
            assert "amount" in error(response)["details"]


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
def test_deposit_limit_refuses_a_malformed_amount(player, amount):
    before = written()
    response = as_player(player).put(
        f"/api/v1/players/{player.external_id}/deposit-limits",
        {"currency": "EUR", "period": "day", "amount": amount},
        format="json",
    )
    _assert_refused(response, before)


def test_a_27_digit_deposit_limit_is_refused_not_a_database_overflow(player):
    before = written()
    response = as_player(player).put(
        f"/api/v1/players/{player.external_id}/deposit-limits",
        {"currency": "EUR", "period": "month", "amount": "9" * 27 + ".00"},
        format="json",
    )
    _assert_refused(response, before)


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
def test_game_bet_and_win_refuse_a_malformed_amount(player, amount):
    studio = make_provider()
    round_id = new_id("round")
    assert studio.bet(player, "1.00", round_id=round_id).status_code == 200
    before = written()
    _assert_refused(studio.bet(player, amount, round_id=round_id), before)
    _assert_refused(studio.win(player, amount, round_id=round_id), before)


# --- identifiers, booleans ----------------------------------------------------------------


@pytest.mark.parametrize("bad_id", BAD_IDS, ids=repr)
def test_game_wallet_ids_are_exact_strings(player, bad_id):
    studio = make_provider()
    before = written()
    for field in ("transaction_id", "round_id", "player_id"):
        body = {
            "player_id": player.external_id,
            "currency": "EUR",
            "amount": "1.00",
            "transaction_id": new_id("bet"),
            "round_id": new_id("round"),
            "session_token": studio.session(player),
            field: bad_id,
        }
        _assert_refused(studio.call("bet", body), before)


def test_a_trailing_space_is_another_id_refused_not_a_replay_of_the_trimmed_one(player):
    studio = make_provider()
    assert studio.bet(player, "2.00", tx="ws-tx", round_id="r-ws").status_code == 200
    before = written()
    response = studio.bet(player, "2.00", tx="ws-tx ", round_id="r-ws")
    _assert_refused(response, before)
    assert "X-Idempotent-Replay" not in response


@pytest.mark.parametrize("flag", ["yes", "true", 1, 0, "1", None])
def test_round_closed_must_be_a_json_boolean(player, flag):
    studio = make_provider()
    round_id = new_id("round")
    studio.bet(player, "1.00", round_id=round_id)
    before = written()
    _assert_refused(studio.win(player, "1.00", round_id=round_id, round_closed=flag), before)


@pytest.mark.parametrize("bad_id", BAD_IDS, ids=repr)
def test_registration_refuses_an_inexact_player_id(bad_id):
    server = as_casino_server("wallets.add_player")
    before = written()
    response = server.post("/api/v1/players", {"external_id": bad_id}, format="json")
    _assert_refused(response, before)


@pytest.mark.parametrize("header", ["k ", " k", "k\x01", "x" * 201, ""])
def test_idempotency_key_is_exact(player, header):
    before = written()
    response = as_player(player).post(
        "/api/v1/deposits",
        {"method": "card", "amount": "10.00", "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=header,
    )
    _assert_refused(response, before)


# --- countries, dates, day counts ---------------------------------------------------------


@pytest.mark.parametrize("country", ["\u00c4\u00d6", "XX", "Malta", "M", "M1", "mt ", 49])
def test_registration_refuses_what_is_not_an_iso_country(country):
    server = as_casino_server("wallets.add_player")
    before = written()
    response = server.post(
        "/api/v1/players", {"external_id": "c-9", "country": country}, format="json"
    )
    _assert_refused(response, before)
    assert "country" in error(response)["details"]


def test_registration_accepts_a_real_country_in_either_case():
    server = as_casino_server("wallets.add_player")
    response = server.post(
        "/api/v1/players",
        {"external_id": "c-10", "country": "de", "date_of_birth": "1980-02-29"},
        format="json",
    )
    assert response.status_code == 200
    assert (response.json()["country"], response.json()["date_of_birth"]) == ("DE", "1980-02-29")


@pytest.mark.parametrize(
    "date_of_birth", ["", None, "1899-12-31", "2999-01-01", "01/02/1990", "1990-02-30", 19900101]
)
def test_registration_refuses_an_empty_or_impossible_date_of_birth(date_of_birth):
    server = as_casino_server("wallets.add_player")
    before = written()
    response = server.post(
        "/api/v1/players",
        {"external_id": "c-11", "date_of_birth": date_of_birth},
        format="json",
    )
    _assert_refused(response, before)


@pytest.mark.parametrize("days", [99999999, 10**18, 10**30, 0, -1, 3651, "30", 30.5, True])
def test_self_exclusion_day_counts_are_range_checked(player, days):
    before = written()
    response = as_player(player).post(
        f"/api/v1/players/{player.external_id}/self-exclusion",
        {"kind": "self_exclusion", "days": days},
        format="json",
    )
    _assert_refused(response, before)
    assert not SelfExclusion.objects.exists()


def test_the_service_refuses_a_day_count_a_calendar_cannot_hold(player):
    from compliance import services
    from compliance.errors import InvalidLimit

    with pytest.raises(InvalidLimit):
        services.self_exclude(player=player, kind="self_exclusion", days=99999999)
    assert not SelfExclusion.objects.exists()


@pytest.mark.parametrize(
    "query",
    ["date_from=0001-01-01", "date_to=9999-12-31", "date_from=2026-02-01&date_to=2026-01-01"],
)
def test_report_dates_are_range_checked(query):
    server = as_casino_server("reconciliation.view_settlementline", superuser=True)
    response = server.get(f"/api/v1/reconciliation/report.csv?{query}")
    assert response.status_code == 400
    assert error(response)["code"] == "bad_request"


def test_statement_dates_a_database_cannot_compare_are_refused(player):
    response = as_player(player).get(
        f"/api/v1/players/{player.external_id}/statement?created_from=0001-01-01T00:00:00%2B14:00"
    )
    assert response.status_code == 400


# --- unstorable input anywhere: body, query string, URL path, game-wallet multipart ---------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"method": "card", "amount": "10.00", "currency": "EUR", "callback_url": '
        b'"https://casino.example/\\u0000"}',
        b'{"method": "card", "amount": "10.00", "currency": "EUR", "payment_method": '
        b'{"id": "pm_\\u0000"}}',
        b'{"method": "card", "amount": "10.00", "currency": "EUR", "payment_method": '
        b'{"\\u0000": 1}}',
        b'{"method": "card\\ud800", "amount": "10.00", "currency": "EUR"}',
        b'{"method": "card", "amount": "10.00", "currency": "EUR\\u0000"}',
        b"[" * 5000 + b"]" * 5000,
        b'{"method": ',
    ],
    ids=["nul-in-url", "nul-passthrough", "nul-key", "surrogate", "nul-currency", "deep", "cut"],
)
def test_unstorable_or_malformed_json_anywhere_is_a_400(player, raw):
    before = written()
    response = as_player(player).generic(
        "POST",
        "/api/v1/deposits",
        raw,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    _assert_refused(response, before)


def test_nul_in_a_free_text_field_is_a_400(player):
    before = written()
    response = as_player(player).post(
        f"/api/v1/players/{player.external_id}/self-exclusion",
        {"kind": "timeout", "days": 3, "reason": "tilt\x00"},
        format="json",
    )
    _assert_refused(response, before)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/players/p%00/balances",
        "/api/v1/deposits/%00",
        "/api/v1/withdrawals/ref%01/cancel",
        "/api/v1/players/{player}/statement?currency=%00",
        "/api/v1/players/{player}/statement?kind=bet%00",
        "/api/v1/reconciliation/breaks?provider_code=%00",
    ],
)
def test_nul_or_control_characters_in_the_url_are_a_400(player, path):
    before = written()
    response = as_player(player).get(path.format(player=player.external_id))
    _assert_refused(response, before)


def test_a_multipart_body_with_nul_on_the_game_wallet_is_a_400(player):
    studio = make_provider()
    boundary = "XyZ"
    raw = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="player_id"\r\n\r\n'
        f"{player.external_id}\x00\r\n--{boundary}--\r\n"
    ).encode()
    ts = str(int(time.time()))
    before = written()
    response = Client().generic(
        "POST",
        BASE + "bet",
        raw,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers={
            "X-Game-Key": studio.provider.key_id,
            "X-Game-Timestamp": ts,
            "X-Game-Signature": game_services.signature_for(
                secret=studio.secret, timestamp=ts, body=raw
            ),
        },
    )
    _assert_refused(response, before)


def test_a_signed_json_body_with_a_nul_id_is_a_400(player):
    studio = make_provider()
    before = written()
    response = studio.call("balance", {"player_id": "p\x00", "currency": "EUR"})
    _assert_refused(response, before)
    assert json.loads(response.content)["error"]["code"] == "bad_request"


# --- unknown URLs and non-integer ids answer JSON 404 ---------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/nope"),
        ("get", "/api/"),
        ("get", "/api/v2/deposits"),
        ("delete", "/api/v1/payout-instruments/abc"),
        ("delete", "/api/v1/payout-instruments/99999999999999999999999999"),
        ("get", "/api/v1/reconciliation/runs/abc"),
        ("get", "/api/v1/reconciliation/reports/1.5"),
        ("get", "/api/v1/reconciliation/runs/99999999999999999999999999"),
    ],
)
def test_unknown_urls_and_bad_ids_under_api_answer_a_json_404(player, method, path):
    client = as_casino_server(superuser=True) if "reconciliation" in path else as_player(player)
    response = getattr(client, method)(path)
    assert response.status_code == 404
    assert error(response)["code"] == "not_found"
