import os
import shutil
import time

import pytest
from django.test import Client

from wallets.services import seed_currencies


@pytest.fixture(autouse=True)
def _seeded_currencies(request):
    """Transactional tests flush the database, seeded currencies included; put them back."""
    if request.node.get_closest_marker("django_db"):
        request.getfixturevalue("_django_db_helper")
        seed_currencies()


# --- browser tests: Playwright driving Debian's chromium, never a downloaded browser ---

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(
            "Debian's chromium is missing: `make test` installs it (apt-get install chromium)."
        )
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make
    # to set up and check state are ordinary synchronous ones, not async code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


# --- staff logins: the console requires a second factor (docs/staff-auth.md) ---------------


def _verified_force_login(client, user, backend=None):
    """`force_login` skips the password; with the console's two-factor login it skips the
    second factor too: the session is verified with the user's authenticator (one is made if
    the user has none). Tests of the half-logged-in state use `force_login_password_only`."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from staff.signals import VERIFIED_WITH

    _password_only_force_login(client, user, backend)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test authenticator", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[VERIFIED_WITH] = device.persistent_id
    session.save()


# Django's own force_login, captured before the fixture below replaces it.
_password_only_force_login = Client.force_login


@pytest.fixture(autouse=True)
def _force_login_is_a_verified_staff_login(monkeypatch):
    monkeypatch.setattr(Client, "force_login", _verified_force_login)
    monkeypatch.setattr(
        Client, "force_login_password_only", _password_only_force_login, raising=False
    )


def totp_code(device) -> str:
    """The code an authenticator app would show for `device` now, or the next step's code
    when now's was already used (a TOTP code is accepted once; the device allows one step
    of clock drift either way)."""
    from django_otp.oath import TOTP

    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    step = max(totp.t(), device.last_t + 1)
    totp.time = device.t0 + step * device.step
    return f"{totp.token():0{device.digits}d}"


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    """Throttle counters live in the cache; every test starts with a full budget, or the
    suite's many 401 assertions (all from 127.0.0.1) would lock the address out."""
    from django.core.cache import cache

    cache.clear()
    yield
