"""An operator in a real browser: log in, find a player, freeze them with a reason."""

import os

import pytest
from django.contrib.auth import get_user_model
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import totp_code
from tests.wallets.factories import PlayerFactory, fund
from wallets.models import Player

pytestmark = pytest.mark.django_db(transaction=True)
SCREENSHOTS = os.environ.get("E2E_SCREENSHOTS", "")


def log_in(page, live_server):
    """The console's real login: password, then the code of the operator's authenticator."""
    operator = get_user_model().objects.create_superuser(
        "operator", "ops@example.com", "a-long-password-1"
    )
    device = TOTPDevice.objects.create(user=operator, name="phone", confirmed=True)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "a-long-password-1")
    page.click("input[type=submit]")
    page.wait_for_selector("#verify-form")
    page.fill("#id_code", totp_code(device))
    page.click("#verify-form input[type=submit]")
    page.wait_for_selector("#content-main .app-wallets")


def test_operator_freezes_a_player_from_the_console(page, live_server):
    player = PlayerFactory(external_id="e2e-player-1", first_name="Ada", last_name="Lovelace")
    fund(player, "75.00")
    log_in(page, live_server)

    page.goto(f"{live_server.url}/admin/wallets/player/?q=e2e-player-1")
    page.check("input.action-select")
    page.select_option("select[name=action]", "freeze")
    page.click("button[name=index]")
    page.fill("#id_reason", "Chargeback pattern under review")
    page.click("input[name=apply]")
    page.wait_for_selector(".messagelist")
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, "freeze.png"), full_page=True)

    assert "Player e2e-player-1: done." in page.inner_text(".messagelist")
    player.refresh_from_db()
    assert player.status == Player.Status.FROZEN
    assert player.status_changes.get().reason == "Chargeback pattern under review"

    page.goto(f"{live_server.url}/admin/wallets/player/{player.pk}/change/")
    assert "75.00000000" in page.content()


def test_api_docs_render_offline(page, live_server, csp_violations):
    """Swagger UI from the sidecar's static files, under the CSP, for a verified operator."""
    log_in(page, live_server)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock-summary-path", timeout=15_000)
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, "api-docs.png"))
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/players/{external_id}/statement" in p for p in paths)
    assert csp_violations == []
