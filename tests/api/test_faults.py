"""Faults answer cleanly: a database or broker outage is 503 `service_unavailable` with
Retry-After, nothing is half-written, and the retried call succeeds exactly once."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from unittest import mock

import httpx
import kombu.exceptions
import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client

from tests.api.helpers import as_player, error, written
from tests.compliance.factories import make_player
from tests.wallets.factories import fund
from tests.wallets.game_factories import make_provider, new_id
from wallets import game_services
from wallets.models import Account, GameTransaction

REPO = Path(__file__).resolve().parents[2]


def assert_unavailable(response):
    assert response.status_code == 503, response.content[:300]
    body = error(response)
    assert body["code"] == "service_unavailable"
    assert int(response["Retry-After"]) >= 1
    assert body["details"]["retry_after"] == int(response["Retry-After"])


def cash(player) -> Decimal:
    return Account.objects.get(
        owner=player, kind=Account.Kind.PLAYER_CASH, currency_id="EUR"
    ).balance


@pytest.mark.django_db
@pytest.mark.parametrize(
    "outage",
    [
        OperationalError("could not connect to server: Connection refused"),
        InterfaceError("connection already closed"),
        kombu.exceptions.OperationalError("Error 111 connecting to redis:6379."),
    ],
    ids=["database", "connection", "broker"],
)
def test_an_outage_inside_an_api_call_is_a_503_json(outage):
    player = make_player()
    with mock.patch("wallets.api.selectors.player_balances", side_effect=outage):
        response = as_player(player).get(f"/api/v1/players/{player.external_id}/balances")
    assert_unavailable(response)


@pytest.mark.django_db
def test_an_outage_in_a_plain_django_view_under_api_is_a_503_json():
    """The providers' webhook endpoint is not a DRF view; the middleware answers for it."""
    from payments.models import PaymentProvider

    provider = PaymentProvider.objects.create(
        code="outage-psp",
        name="Outage PSP",
        kind=PaymentProvider.Kind.values[0],
        protocol=PaymentProvider.Protocol.values[0],
    )
    with mock.patch(
        "payments.api.services.receive_webhook", side_effect=OperationalError("server closed")
    ):
        response = Client(raise_request_exception=False).post(
            f"/api/v1/payments/webhooks/{provider.code}", b"{}", content_type="application/json"
        )
    assert_unavailable(response)


@pytest.mark.django_db(transaction=True)
def test_a_database_error_in_the_middle_of_a_bet_writes_nothing_and_the_retry_succeeds_once():
    """The bet's round row and ledger entry are written before the outage strikes; the 503
    leaves neither behind, and the same call afterwards is one bet, not two."""
    player = make_player()
    fund(player, "50.00")
    studio = make_provider()
    body = {
        "player_id": player.external_id,
        "currency": "EUR",
        "amount": "5.00",
        "transaction_id": new_id("bet"),
        "round_id": new_id("round"),
        "session_token": studio.session(player),
    }
    before = written()
    with mock.patch.object(
        game_services, "_finish", side_effect=OperationalError("terminating connection")
    ):
        assert_unavailable(studio.call("bet", body))
    assert written() == before
    assert cash(player) == Decimal("50.00")

    retried = studio.call("bet", body)
    assert retried.status_code == 200, retried.content
    assert "X-Idempotent-Replay" not in retried
    again = studio.call("bet", body)
    assert again["X-Idempotent-Replay"] == "true"
    assert GameTransaction.objects.filter(transaction_id=body["transaction_id"]).count() == 1
    assert cash(player) == Decimal("45.00")


# --- a real PostgreSQL, stopped and started under a running server ------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pg_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not candidates:
        pytest.skip("PostgreSQL server binaries are not installed")
    return candidates[-1].parent


class PrivateCluster:
    """A throwaway PostgreSQL cluster under /tmp on a spare port, owned by this test."""

    def __init__(self):
        self.bin = _pg_bin()
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="apihard-pg-"))
        self.data = self.dir / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")

    def run(self, *argv: str) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)  # noqa: S603 (our argv)

    def init(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "casino")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self.run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/casino"


SETUP = """
import json
from decimal import Decimal
from wallets import game_services, services
from wallets.models import Player
services.seed_currencies()
player = Player.objects.create(external_id="outage-player", country="MT")
services.credit_deposit(player=player, currency="EUR", amount=Decimal("50.00"),
                        provider_code="test-psp", idempotency_key="outage-fund")
provider, secret = game_services.create_provider(name="Outage", code="outage", currencies=["EUR"])
print(json.dumps({
    "key_id": provider.key_id, "secret": secret,
    "session": game_services.issue_game_session(player=player, provider=provider, currency="EUR"),
}))
"""

CHECK = """
from wallets.models import Account, GameTransaction
cash = Account.objects.get(owner__external_id="outage-player", kind="player_cash").balance
bets = GameTransaction.objects.filter(transaction_id="outage-bet").count()
print(f"{cash}|{bets}")
"""


def _manage(env, *argv, timeout=300) -> str:
    done = subprocess.run(  # noqa: S603 (our own manage.py)
        [sys.executable, "manage.py", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _signed_bet(base_url: str, credentials: dict, amount: str, tx: str):
    body = json.dumps(
        {
            "player_id": "outage-player",
            "currency": "EUR",
            "amount": amount,
            "transaction_id": tx,
            "round_id": "outage-round",
            "session_token": credentials["session"],
        }
    ).encode()
    ts = str(int(time.time()))
    response = httpx.post(
        base_url + "/api/v1/game-wallet/bet",
        content=body,
        timeout=30,
        headers={
            "Content-Type": "application/json",
            "X-Game-Key": credentials["key_id"],
            "X-Game-Timestamp": ts,
            "X-Game-Signature": game_services.signature_for(
                secret=credentials["secret"], timestamp=ts, body=body
            ),
        },
    )
    return response.status_code, response.headers, response.json()


@pytest.fixture
def cluster():
    cluster = PrivateCluster()
    try:
        cluster.init()
    except (subprocess.CalledProcessError, FileNotFoundError) as failure:
        cluster.destroy()
        pytest.skip(f"cannot start a private PostgreSQL: {failure}")
    yield cluster
    cluster.destroy()


def test_postgres_stopped_under_a_running_server_is_a_503_and_the_retry_succeeds_once(cluster):
    env = {
        **os.environ,
        "DATABASE_URL": cluster.url,
        "CELERY_BROKER_URL": "",
        "CACHE_URL": "",
        "REDIS_URL": "",
        "DEPLOY_PROFILE": "local",
        "SECRET_KEY": "outage-test",
        "SANDBOX_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }
    _manage(env, "migrate", "--noinput")
    credentials = json.loads(_manage(env, "shell", "-c", SETUP).strip().splitlines()[-1])
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 (our own manage.py)
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        status, _, _ = _signed_bet(base_url, credentials, "1.00", "warm-up-bet")
        assert status == 200

        cluster.stop()
        status, headers, body = _signed_bet(base_url, credentials, "5.00", "outage-bet")
        assert status == 503, body
        assert body["error"]["code"] == "service_unavailable"
        assert int(headers["Retry-After"]) >= 1

        cluster.start()
        status, headers, body = _signed_bet(base_url, credentials, "5.00", "outage-bet")
        assert status == 200, body
        assert "X-Idempotent-Replay" not in headers
        assert body["cash"] == "44.00"
        status, headers, body = _signed_bet(base_url, credentials, "5.00", "outage-bet")
        assert (status, headers.get("X-Idempotent-Replay")) == (200, "true")
    finally:
        server.terminate()
        server.wait(timeout=30)
    cash, bets = _manage(env, "shell", "-c", CHECK).strip().splitlines()[-1].split("|")
    assert (Decimal(cash), int(bets)) == (Decimal("44.00"), 1)
