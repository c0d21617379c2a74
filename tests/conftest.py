import os
import shutil

import pytest

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


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    """Throttle counters live in the cache; every test starts with a full budget, or the
    suite's many 401 assertions (all from 127.0.0.1) would lock the address out."""
    from django.core.cache import cache

    cache.clear()
    yield
