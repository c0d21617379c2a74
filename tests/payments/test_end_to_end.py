"""API → sandbox provider over HTTP → webhook → Celery worker (real, on Redis) → wallet."""

from decimal import Decimal

import httpx
import pytest

from payments.models import Deposit, WebhookEvent
from tests.payments.factories import cash, key, make_player, player_client, wait_for
from wallets import selectors

pytestmark = pytest.mark.django_db(transaction=True)


def start_deposit(player, amount, method="card", currency="EUR", **extra):
    response = player_client(player).post(
        "/api/v1/deposits",
        {"method": method, "amount": amount, "currency": currency, **extra},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 201, response.json()
    return response.json()


def deposit_status(reference, status, timeout=15):
    return wait_for(
        lambda: Deposit.objects.filter(reference=reference, status=status).first(),
        timeout=timeout,
        what=f"deposit {reference} to be {status}",
    )


def test_card_deposit_with_3ds_credits_the_wallet_through_the_webhook(sandbox):
    player = make_player()
    body = start_deposit(player, "25.00")
    assert body["status"] == "pending"
    assert "/3ds/" in body["redirect_url"]

    page = httpx.get(body["redirect_url"])
    assert "Authenticate" in page.text
    httpx.post(body["redirect_url"], data={"action": "authenticate"})

    deposit = deposit_status(body["reference"], "succeeded")
    assert deposit.amount_received == Decimal("25.00")
    assert cash(player) == Decimal("25.00")
    event = WebhookEvent.objects.get(deposit=deposit)
    assert event.is_signature_valid and event.outcome == "applied"
    assert selectors.ledger_problems() == []
