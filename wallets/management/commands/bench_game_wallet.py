"""Game-wallet API under load: gunicorn serves the real stack (HMAC auth, DRF, ledger) on
127.0.0.1 and a second process (bench/game_wallet_load.py) sends signed bet and win calls from
16 concurrent clients, spread over many players and then all on one player.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/casino_bench \\
        python manage.py bench_game_wallet --workers 4 --clients 16 --seconds 20

Writes real rows (a "bench-studio" provider, bench players, their bets): use a scratch
database. Ends by checking the ledger invariants over everything it wrote.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from wallets import game_services, selectors, services
from wallets.models import GameProvider

FUNDING = Decimal("1000000.00")
DRIVER = Path(settings.BASE_DIR) / "bench" / "game_wallet_load.py"


class Command(BaseCommand):
    help = "Benchmark the signed game-wallet API under gunicorn (requests/s, p50, p99)."

    def add_arguments(self, parser):
        parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (2-4)")
        parser.add_argument("--threads", type=int, default=1, help="threads per worker")
        parser.add_argument("--clients", type=int, default=16)
        parser.add_argument("--seconds", type=float, default=20)
        parser.add_argument("--players", type=int, default=1000)
        parser.add_argument("--port", type=int, default=8301)
        parser.add_argument("--mode", choices=["spread", "one", "both"], default="both")

    def handle(self, *args, **options):
        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
            raise CommandError("Run against PostgreSQL: set DATABASE_URL to a scratch database.")
        if not settings.CELERY_BROKER_URL:
            self.stderr.write(
                "CELERY_BROKER_URL is not set: post-commit tasks of other apps will run inside "
                "the requests and inflate the latencies."
            )
        provider, secret = self._provider()
        players = self._players(options["players"], provider)
        hot = self._players(1, provider, prefix="bench-hot")[0]
        base_url = f"http://127.0.0.1:{options['port']}/api/v1/game-wallet"
        config = {"key_id": provider.key_id, "secret": secret, "base_url": base_url,
                  "players": players, "hot_player": hot}  # fmt: skip
        modes = ["spread", "one"] if options["mode"] == "both" else [options["mode"]]
        # The secret goes to the driver through a private temp file, never argv (ps shows it).
        with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
            os.chmod(handle.name, 0o600)
            json.dump(config, handle)
            handle.flush()
            server = self._serve(options)
            try:
                for mode in modes:
                    self._report(self._drive(handle.name, mode, options), options)
            finally:
                server.terminate()
                server.wait(timeout=30)
        problems = selectors.ledger_problems()
        self.stdout.write(f"ledger problems after the run: {len(problems)}")
        if problems:
            raise CommandError("\n".join(map(str, problems[:10])))

    def _provider(self) -> tuple[GameProvider, str]:
        provider = GameProvider.objects.filter(code="bench-studio").first()
        if provider is None:
            return game_services.create_provider(
                name="Bench Studio", code="bench-studio", currencies=["EUR"]
            )
        # The clear secret is never stored, so each run takes a fresh one.
        return provider, game_services.rotate_provider_secret(provider=provider)

    def _players(self, count: int, provider, prefix="bench-player") -> list[dict]:
        players = []
        for index in range(count):
            player = services.register_player(external_id=f"{prefix}-{index:05d}", country="MT")
            services.credit_deposit(
                player=player,
                currency="EUR",
                amount=FUNDING,
                provider_code="bench-funding",
                idempotency_key=f"bench-funding-{player.external_id}",
            )
            token = game_services.issue_game_session(
                player=player, provider=provider, currency="EUR"
            )
            players.append({"player_id": player.external_id, "session_token": token})
        return players

    def _serve(self, options) -> subprocess.Popen:
        env = {**os.environ, "CONN_MAX_AGE": "600", "DEBUG": "false", "LOG_LEVEL": "WARNING"}
        command = [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--bind", f"127.0.0.1:{options['port']}",
            "--workers", str(options["workers"]),
            "--threads", str(options["threads"]),
            "--log-level", "warning",
        ]  # fmt: skip
        server = subprocess.Popen(command, env=env, cwd=settings.BASE_DIR)  # noqa: S603
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise CommandError("gunicorn exited; see its output above.")
            try:
                socket.create_connection(("127.0.0.1", options["port"]), timeout=1).close()
            except OSError:
                time.sleep(0.2)
                continue
            time.sleep(1)  # let every worker finish booting, not just the first
            return server
        server.terminate()
        raise CommandError("gunicorn did not start listening within 30 s.")

    def _drive(self, config_path: str, mode: str, options) -> dict:
        command = [
            sys.executable, str(DRIVER), config_path,
            "--clients", str(options["clients"]),
            "--seconds", str(options["seconds"]),
            "--mode", mode,
        ]  # fmt: skip
        out = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
        return json.loads(out.stdout.strip().splitlines()[-1])

    def _report(self, figures: dict, options) -> None:
        where = "spread over many players" if figures["mode"] == "spread" else "all on one player"
        self.stdout.write(
            f"{where}: {figures['requests']} requests in {figures['seconds']} s "
            f"with {figures['clients']} clients, gunicorn {options['workers']} workers x "
            f"{options['threads']} threads: {figures['requests_per_second']} req/s, "
            f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms "
            f"(bet p99 {figures['bet_p99_ms']} ms, win p99 {figures['win_p99_ms']} ms), "
            f"failures {figures['failures']}"
        )
        for failure in figures["first_failures"]:
            self.stdout.write(f"  failure: {failure}")
