"""The cashier demo page in a real browser: deposit by card, pass 3-D Secure on the sandbox's
hosted page, come back, and see the wallet credited by the webhook the worker processed."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django_otp.plugins.otp_totp.models import TOTPDevice

from payments.models import Deposit
from tests.conftest import totp_code
from tests.payments.factories import cash, make_player, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_staff_deposits_through_the_cashier_and_the_3ds_page(page, live_server, sandbox):
    player = make_player(external_id="cashier-1", first_name="Grace", last_name="Hopper")
    operator = get_user_model().objects.create_superuser(
        "cashier-op", "op@example.com", "long-password-2"
    )
    device = TOTPDevice.objects.create(user=operator, name="phone", confirmed=True)

    # The console's real login: password, then the authenticator's code.
    page.goto(f"{live_server.url}/admin/login/?next=/cashier/?player=cashier-1")
    page.fill("#id_username", "cashier-op")
    page.fill("#id_password", "long-password-2")
    page.click("input[type=submit]")
    page.wait_for_selector("#verify-form")
    page.fill("#id_code", totp_code(device))
    page.click("#verify-form input[type=submit]")
    page.wait_for_selector("#balances")
    page.select_option("select[name=method]", "card")
    page.select_option("select[name=currency]", "EUR")
    page.fill("input[name=amount]", "25.00")
    page.click("form.deposit button[type=submit]")

    page.wait_for_selector("text=3-D Secure")
    assert "/3ds/" in page.url
    page.click("text=Complete authentication")
    page.wait_for_selector("#deposits")
    # Back where the cashier asked, with what Stripe appends to a return URL.
    assert "/cashier/?player=cashier-1&attempt=" in page.url
    assert "redirect_status=succeeded" in page.url

    deposit = wait_for(
        lambda: Deposit.objects.filter(player=player, status="succeeded").first(),
        what="the deposit to succeed",
    )
    assert cash(player) == Decimal("25.00")
    page.reload()
    balances = page.inner_text("#balances")
    assert "EUR" in balances and "25.00" in balances
    assert deposit.reference in page.inner_text("#deposits")


def test_cashier_is_for_staff_only(page, live_server, sandbox):
    page.goto(f"{live_server.url}/cashier/")
    assert "/admin/login/" in page.url
