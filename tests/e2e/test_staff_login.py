"""The console login in a real browser: password, second factor, enrolment, lockout, and the
pages staff use (admin, cashier, Swagger UI) running under the Content-Security-Policy."""

from base64 import b32decode

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import totp_code
from tests.wallets.factories import PlayerFactory

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-password-1"


def password_step(page, live_server, username="ops", password=PASSWORD):
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")


def test_password_then_totp_code_then_an_admin_page(page, live_server, csp_violations):
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    password_step(page, live_server)
    page.wait_for_selector("#verify-form")

    # Without the code, the console stays shut.
    page.goto(f"{live_server.url}/admin/wallets/player/")
    page.wait_for_selector("#verify-form")
    assert "/admin/2fa/verify/" in page.url

    page.fill("#id_code", totp_code(device))
    page.click("#verify-form input[type=submit]")
    page.wait_for_selector("#changelist")
    assert page.url.endswith("/admin/wallets/player/")
    page.goto(f"{live_server.url}/admin/compliance/case/")
    page.wait_for_selector("#changelist")
    assert csp_violations == []


def test_first_login_enrols_an_authenticator_from_the_page(page, live_server, csp_violations):
    get_user_model().objects.create_user("new-hire", "n@example.com", PASSWORD, is_staff=True)
    password_step(page, live_server, "new-hire")
    page.wait_for_selector("#enrol-form")
    assert page.locator("#otp-qr svg").count() == 1
    # What a person types into their app when they cannot scan: the key on the page.
    secret = page.inner_text("#otp-secret").replace(" ", "")
    totp = TOTP(b32decode(secret))
    page.fill("#id_code", f"{totp.token():06d}")
    page.click("#enrol-form input[type=submit]")
    page.wait_for_selector("#recovery-codes")
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    page.click("#continue")
    page.wait_for_selector("#site-name")
    assert page.url.endswith("/admin/")

    # Next login, from another browser: a recovery code instead of the app.
    other = page.context.browser.new_context()
    try:
        second = other.new_page()
        password_step(second, live_server, "new-hire")
        second.wait_for_selector("#verify-form")
        second.fill("#id_code", codes[0])
        second.click("#verify-form input[type=submit]")
        second.wait_for_selector("#user-tools")
        assert second.url.endswith("/admin/")
    finally:
        other.close()
    assert csp_violations == []


@override_settings(AXES_FAILURE_LIMIT=3)
def test_repeated_wrong_passwords_lock_the_login_with_a_clear_message(page, live_server):
    get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    for _ in range(2):
        password_step(page, live_server, password="wrong")
        page.wait_for_selector(".errornote")
    password_step(page, live_server, password="wrong")
    page.wait_for_selector("#lockout-title")
    # The right password now gets the same answer.
    password_step(page, live_server)
    page.wait_for_selector("#lockout-title")
    message = " ".join(page.inner_text("#lockout-message").split())
    assert "Too many failed login attempts (3 wrong passwords or codes)" in message
    assert "Try again in 15 minutes" in message


def test_cashier_demo_page_works_for_a_verified_staff_user(page, live_server, csp_violations):
    PlayerFactory(external_id="cashier-1", first_name="Ada", last_name="Lovelace")
    PlayerFactory(external_id="cashier-2", first_name="Grace", last_name="Hopper")
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    page.goto(f"{live_server.url}/cashier/")
    page.wait_for_selector("#id_username")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#verify-form")
    page.fill("#id_code", totp_code(device))
    page.click("#verify-form input[type=submit]")
    page.wait_for_selector("select[name=method]")
    assert page.url.endswith("/cashier/")
    assert "Wallet of Ada Lovelace" in page.inner_text("h2")
    page.select_option("select[name=player]", "cashier-2")
    page.click("#show-player")
    page.wait_for_selector("text=Wallet of Grace Hopper")
    assert csp_violations == []
