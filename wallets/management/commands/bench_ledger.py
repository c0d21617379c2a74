"""Ledger throughput: bets and wins from several processes, spread over many wallets or all on
one (--hot), with the balance roll-up running alongside as it does in production.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/casino_bench \\
        python manage.py bench_ledger --workers 8 --seconds 20 [--hot] [--pgbench]

Processes, not threads: the GIL would make threads measure Python, not the ledger.
"""

import multiprocessing
import random
import re
import shutil
import statistics
import subprocess
import time
import uuid
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections

from wallets import services
from wallets.models import Player

FUNDING = Decimal("1000000.00")
STAKE = Decimal("1.00")


def _worker(index: int, player_ids: list[int], seconds: float, results) -> None:
    connections.close_all()  # never share the parent's socket after fork
    rng = random.Random(index)
    players = list(Player.objects.filter(pk__in=player_ids))
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        player = rng.choice(players)
        started = time.perf_counter()
        services.debit_bet(
            player=player,
            currency="EUR",
            amount=STAKE,
            game_code="bench",
            idempotency_key=f"bench-{uuid.uuid4()}",
        )
        latencies.append(time.perf_counter() - started)
        if rng.random() < 0.5:
            started = time.perf_counter()
            services.credit_win(
                player=player,
                currency="EUR",
                amount=STAKE * 2,
                game_code="bench",
                idempotency_key=f"bench-{uuid.uuid4()}",
            )
            latencies.append(time.perf_counter() - started)
    connections.close_all()
    results.put(latencies)


def _roller(stop) -> None:
    connections.close_all()
    while not stop.is_set():
        services.roll_up_system_balances()
        stop.wait(1)
    connections.close_all()


class Command(BaseCommand):
    help = "Measure ledger entries/s and postings/s with p50/p99 latency (PostgreSQL only)."

    def add_arguments(self, parser):
        parser.add_argument("--workers", type=int, default=8)
        parser.add_argument("--seconds", type=float, default=20)
        parser.add_argument("--players", type=int, default=2000)
        parser.add_argument("--hot", action="store_true", help="every worker on one wallet")
        parser.add_argument(
            "--pgbench", action="store_true", help="also run pgbench TPC-B with as many clients"
        )

    def handle(self, *args, workers, seconds, players, hot, pgbench, **options):
        if connection.vendor != "postgresql":
            raise CommandError("The benchmark measures PostgreSQL; set DATABASE_URL to it.")
        player_ids = self._funded_players(1 if hot else players)
        connections.close_all()

        context = multiprocessing.get_context("fork")
        results = context.Queue()
        stop = context.Event()
        roller = context.Process(target=_roller, args=(stop,))
        procs = [
            context.Process(target=_worker, args=(i, player_ids, seconds, results))
            for i in range(workers)
        ]
        roller.start()
        started = time.perf_counter()
        for proc in procs:
            proc.start()
        latencies = [lat for _ in procs for lat in results.get()]
        elapsed = time.perf_counter() - started
        for proc in procs:
            proc.join()
        stop.set()
        roller.join()

        entries_per_s = len(latencies) / elapsed
        ordered = sorted(latencies)
        shape = "hot: one wallet" if hot else f"spread: {len(player_ids)} wallets"
        self.stdout.write(
            f"ledger ({shape}, {workers} processes, {elapsed:.1f} s): "
            f"{len(latencies)} entries, {entries_per_s:.0f} entries/s, "
            f"{entries_per_s * 2:.0f} postings/s, "
            f"p50 {statistics.median(ordered) * 1000:.2f} ms, "
            f"p99 {ordered[int(len(ordered) * 0.99) - 1] * 1000:.2f} ms"
        )
        if pgbench:
            tps = self._pgbench(workers, seconds)
            self.stdout.write(
                f"pgbench TPC-B ({workers} clients, {seconds:.0f} s): {tps:.0f} tps; "
                f"ledger entries/s ÷ pgbench tps = {entries_per_s / tps:.2f}"
            )

    def _funded_players(self, count: int) -> list[int]:
        ids = []
        for n in range(count):
            player = services.register_player(external_id=f"bench-{n:06d}", country="MT")
            if player.status != Player.Status.ACTIVE:
                Player.objects.filter(pk=player.pk).update(status=Player.Status.ACTIVE)
            services.credit_deposit(
                player=player,
                currency="EUR",
                amount=FUNDING,
                provider_code="bench",
                idempotency_key=f"bench-funding-{player.external_id}",
            )
            ids.append(player.pk)
        return ids

    def _pgbench(self, clients: int, seconds: float) -> float:
        """TPC-B-like pgbench in its own scratch database on the same server."""
        pgbench = shutil.which("pgbench")
        if not pgbench:
            raise CommandError("pgbench is not installed (Debian: postgresql-client).")
        db = settings.DATABASES["default"]
        conn = ["-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432), "-U", db["USER"]]
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = 'bench_pgbench'")
            if cursor.fetchone() is None:
                cursor.execute("CREATE DATABASE bench_pgbench")
        run = {"check": True, "capture_output": True, "text": True}
        initialise = [pgbench, *conn, "-i", "-q", "-s", "10", "bench_pgbench"]
        measure = [pgbench, *conn, "-c", str(clients), "-j", "2", "-T", str(int(seconds))]
        subprocess.run(initialise, **run)  # noqa: S603 (our own arguments, no shell)
        out = subprocess.run([*measure, "bench_pgbench"], **run).stdout  # noqa: S603
        match = re.search(r"tps = ([\d.]+)", out)
        if not match:
            raise CommandError(f"Could not read pgbench's tps:\n{out}")
        return float(match.group(1))
