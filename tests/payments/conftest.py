"""A real Celery worker on the real Redis broker, against the test database.

The worker is a subprocess (`celery -A config worker`) started once per session after
pytest-django has created the test database; its DATABASE_URL names that database, and its
PAYMENTS_PUBLIC_BASE_URL is the live server, so webhooks from the sandbox (sent by the
worker) reach our webhook endpoint over HTTP. Tests that use it are transactional: the worker
only sees committed rows.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from payments import services

ROOT = Path(__file__).resolve().parents[2]
# Payments tasks go to their own queue during tests, so the worker started here never runs
# other apps' tasks (their tests expect no worker on the default queue).
TEST_QUEUE = "payments-tests"

# Short enough for tests, identical in the worker (passed through its environment).
TEST_SETTINGS = {
    "PAYMENTS_PROVIDER_TIMEOUT_SECONDS": 1.0,
    "PAYMENTS_SANDBOX_TIMEOUT_SLEEP_SECONDS": 2.0,
    "PAYMENTS_SANDBOX_WEBHOOK_DELAY_SECONDS": 2.0,
    "PAYMENTS_NOTIFICATION_TIMEOUT_SECONDS": 2.0,
}


@pytest.fixture(scope="session", autouse=True)
def _fast_payment_timings():
    for name, value in TEST_SETTINGS.items():
        setattr(settings, name, value)


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(live_url: str, *, queue: str, log_name: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "PAYMENTS_PUBLIC_BASE_URL": live_url,
        "PAYMENTS_TASK_QUEUE": TEST_QUEUE,
        **{name: str(value) for name, value in TEST_SETTINGS.items()},
    }
    log = open(Path(tempfile.gettempdir()) / log_name, "w")  # noqa: SIM115 (lives with the worker)
    return subprocess.Popen(  # noqa: S603 (our own fixed command line)
        [
            str(Path(sys.executable).with_name("celery")),
            "-A",
            "config",
            "worker",
            "--pool=threads",
            "--concurrency=4",
            "-Q",
            queue,
            "-n",
            f"{queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_until_ready(process: subprocess.Popen, name: str, timeout: float = 30):
    from config.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited with {process.returncode}")
        replies = app.control.ping(destination=[name], timeout=0.5) or []
        if replies:
            return
    raise RuntimeError("celery worker did not come up")


def _route_tasks(app, routes):
    """Celery builds its router once, on the first task sent (maybe by another app's test):
    set the routes and drop the cached router so the next send uses them."""
    app.conf.task_routes = routes
    app.amqp.flush_routes()
    app.amqp.__dict__.pop("router", None)


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, live_server):
    if not settings.CELERY_BROKER_URL:
        pytest.fail("These tests need CELERY_BROKER_URL (a real Redis broker).")
    from config.celery import app

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete(TEST_QUEUE, "doomed")  # leftovers of an earlier, interrupted run
    settings.PAYMENTS_PUBLIC_BASE_URL = live_server.url
    previous_routes = app.conf.task_routes
    _route_tasks(app, {"payments.*": {"queue": TEST_QUEUE}})
    process = start_worker(live_server.url, queue=TEST_QUEUE, log_name="payments-test-worker.log")
    try:
        wait_until_ready(process, f"{TEST_QUEUE}@{socket.gethostname()}")
        yield process
    finally:
        _route_tasks(app, previous_routes)
        process.terminate()
        process.wait(timeout=20)


def _worker_is_idle(app, broker, name) -> bool:
    if broker.llen(TEST_QUEUE):
        return False
    inspect = app.control.inspect(destination=[name], timeout=1, limit=1)
    for tasks in (inspect.active() or {}, inspect.reserved() or {}):
        if any(tasks.values()):
            return False
    # Tasks waiting on a countdown of a few seconds (delayed webhooks) still belong to the
    # test that scheduled them; notification retries an hour away do not matter.
    soon = time.time() + 10
    for entries in (inspect.scheduled() or {}).values():
        for entry in entries:
            eta = entry.get("eta")
            if eta and _timestamp(eta) < soon:
                return False
    return True


def _timestamp(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


@pytest.fixture
def sandbox(celery_worker, live_server, transactional_db):
    """The sandbox providers, keyed by protocol, pointed at the live server, with fresh
    secrets. On the way out it waits for the worker to finish this test's tasks: a webhook
    still being processed while the test database is truncated would deadlock with the
    truncation."""
    from config.celery import app

    yield {p.protocol: p for p in services.ensure_sandbox_providers(base_url=live_server.url)}
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    name = f"{TEST_QUEUE}@{socket.gethostname()}"
    deadline = time.monotonic() + 20
    # A webhook POST in flight from the worker to the live server shows as an active task
    # until it has been stored and its processing queued, so one idle look is enough.
    time.sleep(0.2)
    while time.monotonic() < deadline and not _worker_is_idle(app, broker, name):
        time.sleep(0.2)
