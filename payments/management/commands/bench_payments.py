"""Payments throughput, each figure beside a floor measured in the same run:

1. webhooks processed per second by ONE Celery worker, for a burst of stored deliveries
   (default 5,000 real Stripe `payment_intent.succeeded` events from the sandbox, signed, each
   crediting a pending deposit), beside the same worker draining as many no-op tasks
   (`celery.accumulate`: broker + worker overhead, no database);
2. deposit-creation API requests per second at 16 concurrent clients, against a gunicorn
   server on 127.0.0.1 whose Stripe sandbox answers in-line (instant-success scenario),
   beside the same clients calling the server's cheapest view (`/api/schema/` is not cheap;
   the webhook endpoint's 404 for an unknown provider is one indexed query).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/casino_payments \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/4 python manage.py bench_payments

The worker and the server are started by the command as subprocesses on the same database
and broker and stopped at the end. Rows it creates stay (the ledger is append-only); run it
on a scratch database.
"""

import itertools
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from compliance import services as compliance
from payments import services
from payments.models import Deposit, PaymentTransition, WebhookEvent
from payments.sandbox import core
from payments.sandbox.models import SandboxPayment
from payments.sandbox.protocols import protocol_module
from payments.tasks import process_webhook
from wallets import services as ledger
from wallets.auth import issue_player_token

ROOT = Path(__file__).resolve().parents[3]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class Command(BaseCommand):
    help = "Benchmark webhook processing by one Celery worker and deposit-creation API rate."

    def add_arguments(self, parser):
        parser.add_argument("--webhooks", type=int, default=5000)
        parser.add_argument("--players", type=int, default=200)
        parser.add_argument("--pool", default="solo", help="Worker pool: solo or threads.")
        parser.add_argument("--concurrency", type=int, default=1)
        parser.add_argument("--clients", type=int, default=16)
        parser.add_argument("--requests", type=int, default=2000)
        parser.add_argument("--port", type=int, default=8404)
        parser.add_argument("--server-workers", type=int, default=4)
        parser.add_argument("--server-threads", type=int, default=8)

    def handle(self, *args, **options):
        if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL:
            raise CommandError("Needs PostgreSQL (DATABASE_URL) and a broker (CELERY_BROKER_URL).")
        base_url = f"http://127.0.0.1:{options['port']}"
        providers = {p.protocol: p for p in services.ensure_sandbox_providers(base_url=base_url)}
        players = self._players(options["players"])
        # The server runs for both parts: a Stripe success event makes the worker fetch the
        # charge (who paid) from the provider, here the sandbox in this server.
        server = self._start_server(base_url, options)
        try:
            self._bench_webhooks(providers["stripe"], players, options)
            self._bench_api(players, base_url, options)
        finally:
            server.terminate()
            server.wait(30)

    # --- setup ---------------------------------------------------------------------------------

    def _players(self, count):
        actor, _ = get_user_model().objects.get_or_create(
            username="bench-payments", defaults={"is_staff": True, "is_superuser": True}
        )
        run = uuid.uuid4().hex[:8]
        players = []
        for i in range(count):
            player = ledger.register_player(
                external_id=f"bench-pay-{run}-{i}",
                date_of_birth=timezone.now().date().replace(year=1990),
                country="MT",
            )
            compliance.set_kyc_level(player=player, level="verified", actor=actor, reason="bench")
            players.append(player)
        return players

    def _env(self, base_url):
        db = connection.settings_dict
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        return {
            **os.environ,
            "DATABASE_URL": f"postgres://{auth}@{host}/{db['NAME']}",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            # Persistent connections, as a production worker and server would run.
            "CONN_MAX_AGE": "60",
            # Capacity is measured here, not the per-player throttle (120 calls a minute).
            "API_THROTTLE_PLAYER": "1000000/minute",
            "PAYMENTS_PUBLIC_BASE_URL": base_url,
        }

    # --- 1. webhooks per second ------------------------------------------------------------------

    def _bench_webhooks(self, card, players, options):
        count = options["webhooks"]
        self.stdout.write(f"Storing {count} signed webhooks for {count} pending deposits…")
        method = card.methods.get(code="card")
        now = timezone.now()
        deposits = Deposit.objects.bulk_create(
            [
                Deposit(
                    reference=services.new_reference("dep"),
                    player=players[i % len(players)],
                    provider=card,
                    method=method,
                    amount=Decimal("10.00"),
                    currency_id="EUR",
                    idempotency_key=uuid.uuid4().hex,
                    request_hash="bench",
                    expires_at=now + timedelta(hours=1),
                )
                for i in range(count)
            ]
        )
        # Pending, as create_deposit leaves them once the provider has accepted them.
        Deposit.objects.filter(pk__in=[d.pk for d in deposits]).update(status="pending")
        PaymentTransition.objects.bulk_create(
            [
                PaymentTransition(
                    deposit=d, from_status="created", to_status="pending", source="bench"
                )
                for d in deposits
            ]
        )
        # The sandbox's own deliveries: what Stripe would send when each payment succeeds.
        sandbox_payments = SandboxPayment.objects.bulk_create(
            [
                SandboxPayment(
                    provider_code=card.code,
                    kind=SandboxPayment.Kind.PAYMENT,
                    sandbox_id=f"pi_bench{deposit.pk}",
                    merchant_reference=deposit.reference,
                    amount=deposit.amount,
                    amount_paid=deposit.amount,
                    currency="EUR",
                    status=core.PAID,
                    scenario=core.SUCCESS,
                    notify_url="http://127.0.0.1:9/",
                    data={"customer": deposit.player.external_id},
                )
                for deposit in deposits
            ]
        )
        Deposit.objects.bulk_update(
            [
                Deposit(pk=deposit.pk, provider_reference=payment.sandbox_id)
                for deposit, payment in zip(deposits, sandbox_payments, strict=True)
            ],
            ["provider_reference"],
        )
        stripe = protocol_module(card.protocol)
        events = []
        for payment in sandbox_payments:
            for body, headers in stripe.webhooks(
                payment, core.PAID, provider=card, signed_right=True
            ):
                events.append(
                    WebhookEvent(
                        provider=card,
                        body=body.decode(),
                        headers={k.lower(): v for k, v in headers.items()},
                        is_signature_valid=True,
                    )
                )
        events = WebhookEvent.objects.bulk_create(events)
        ids = [e.pk for e in events]

        queue = f"bench-{uuid.uuid4().hex[:6]}"
        log = open(Path("/tmp") / "bench-payments-worker.log", "w")  # noqa: S108, SIM115
        worker = subprocess.Popen(  # noqa: S603 (our own command line)
            [
                str(Path(sys.executable).with_name("celery")), "-A", "config", "worker",
                f"--pool={options['pool']}", f"--concurrency={options['concurrency']}",
                "-Q", queue, "-n", f"{queue}@%h", "--without-gossip", "--without-mingle",
                "--loglevel=WARNING",
            ],
            cwd=ROOT, env=self._env(card.api_base_url), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            self._wait_for_worker(worker, f"{queue}@{socket.gethostname()}")
            enqueue_started = time.monotonic()
            for event_id in ids:
                process_webhook.apply_async((event_id,), queue=queue)
            enqueued = time.monotonic() - enqueue_started
            started = time.monotonic()
            while WebhookEvent.objects.filter(pk__in=ids, processed_at__isnull=True).exists():
                time.sleep(0.2)
                if time.monotonic() - started > 1800:
                    raise CommandError("Webhooks not processed within 30 minutes.")
            elapsed = time.monotonic() - enqueue_started
            floor = self._noop_floor(queue, count, f"{queue}@{socket.gethostname()}")
        finally:
            worker.terminate()
            worker.wait(30)
        applied = WebhookEvent.objects.filter(pk__in=ids, outcome="applied").count()
        processed = list(
            WebhookEvent.objects.filter(pk__in=ids)
            .order_by("processed_at")
            .values_list("processed_at", flat=True)
        )
        gaps = [(b - a).total_seconds() * 1000 for a, b in itertools.pairwise(processed)]
        self.stdout.write(
            f"Webhooks: {count} processed by one worker (pool={options['pool']}, "
            f"concurrency={options['concurrency']}) in {elapsed:.1f} s "
            f"(enqueue took {enqueued:.1f} s): {count / elapsed:.0f} webhooks/s; "
            f"{applied} applied; time between completions p50 {percentile(gaps, 0.5):.1f} ms, "
            f"p99 {percentile(gaps, 0.99):.1f} ms"
        )
        self.stdout.write(
            f"  floor: the same worker drains {count} no-op tasks at {count / floor:.0f} tasks/s; "
            f"webhooks run at {(count / elapsed) / (count / floor):.2f}× the floor"
        )

    def _noop_floor(self, queue, count, name) -> float:
        """Seconds for the worker to drain `count` no-op tasks (no result backend: the queue
        is empty and the worker has nothing active)."""
        import redis

        from config.celery import app

        broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        started = time.monotonic()
        for _ in range(count):
            app.send_task("celery.accumulate", args=(1,), queue=queue)
        while True:
            if not broker.llen(queue):
                active = app.control.inspect(destination=[name], timeout=0.5).active() or {}
                if not any(active.values()):
                    return time.monotonic() - started
            time.sleep(0.05)

    def _wait_for_worker(self, process, name):
        from config.celery import app

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise CommandError(
                    "The benchmark worker exited; see /tmp/bench-payments-worker.log"
                )
            if app.control.ping(destination=[name], timeout=0.5):
                return
        raise CommandError("The benchmark worker did not start.")

    # --- 2. deposit API requests per second ------------------------------------------------------

    def _start_server(self, base_url, options):
        log = open(Path("/tmp") / "bench-payments-server.log", "w")  # noqa: S108, SIM115
        server = subprocess.Popen(  # noqa: S603
            [
                str(Path(sys.executable).with_name("gunicorn")), "config.wsgi",
                "-b", f"127.0.0.1:{options['port']}", "-k", "gthread",
                "-w", str(options["server_workers"]), "--threads", str(options["server_threads"]),
            ],
            cwd=ROOT, env=self._env(base_url), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait_for_server(server, base_url)
        return server

    def _bench_api(self, players, base_url, options):
        tokens = [issue_player_token(p) for p in players[: options["clients"]]]

        def deposit(http):
            return http.post(
                "/api/v1/deposits",
                json={"method": "card", "amount": "10.01", "currency": "EUR"},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )

        def trivial(http):
            return http.post("/api/v1/payments/webhooks/no-such-provider", content=b"{}")

        floor = self._load(base_url, tokens, options, trivial)
        measured = self._load(base_url, tokens, options, deposit)
        self._report(
            "Deposit API: POST /api/v1/deposits (compliance check, deposit row, Stripe sandbox "
            "call over HTTP, ledger credit)",
            measured,
            options,
        )
        self._report(
            "  floor: POST to the webhook endpoint of an unknown provider (one indexed query, "
            "JSON 404)",
            floor,
            options,
        )
        self.stdout.write(
            f"  deposits run at {measured[0] / measured[1] / (floor[0] / floor[1]):.2f}× "
            "the floor's requests/s"
        )

    def _load(self, base_url, tokens, options, request):
        """`options["requests"]` calls of `request(http)` from `options["clients"]` threads;
        returns (count, seconds, latencies, statuses)."""
        total, clients = options["requests"], options["clients"]
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        per_client = total // clients

        def client(index):
            with httpx.Client(
                base_url=base_url,
                headers={"Authorization": f"Bearer {tokens[index % len(tokens)]}"},
                timeout=30,
            ) as http:
                for _ in range(per_client):
                    started = time.perf_counter()
                    response = request(http)
                    took = time.perf_counter() - started
                    with lock:
                        latencies.append(took)
                        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(latencies), time.monotonic() - started, latencies, statuses

    def _report(self, title, figures, options):
        done, elapsed, latencies, statuses = figures
        self.stdout.write(
            f"{title}: {done} requests at {options['clients']} clients in {elapsed:.1f} s: "
            f"{done / elapsed:.0f} requests/s; latency p50 "
            f"{percentile(latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, mean "
            f"{statistics.mean(latencies) * 1000:.1f} ms; statuses {statuses}"
        )

    def _wait_for_server(self, process, base_url):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise CommandError("gunicorn exited; see /tmp/bench-payments-server.log")
            try:
                httpx.get(f"{base_url}/api/schema/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise CommandError("gunicorn did not start.")
