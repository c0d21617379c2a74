import time
import uuid
from decimal import Decimal

from rest_framework.test import APIClient

from compliance.models import AmlRule
from tests.compliance.factories import make_player
from tests.wallets.factories import StaffFactory, fund
from wallets.auth import issue_player_token
from wallets.models import Account

__all__ = ["StaffFactory", "fund", "make_player", "reviewer"]


def reviewer():
    """A staff user who may approve and reject withdrawals (the permission Operators hold)."""
    from django.contrib.auth.models import Permission

    user = StaffFactory()
    user.user_permissions.add(
        Permission.objects.get(codename="review_withdrawals", content_type__app_label="payments")
    )
    return type(user).objects.get(pk=user.pk)  # fresh: no cached permissions


def player_client(player) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_player_token(player)}")
    return client


def key() -> str:
    return str(uuid.uuid4())


def cash(player, currency="EUR") -> Decimal:
    account = Account.objects.filter(
        owner=player, kind=Account.Kind.PLAYER_CASH, currency_id=currency
    ).first()
    return account.balance if account else Decimal(0)


def held(player, currency="EUR") -> Decimal:
    account = Account.objects.filter(
        owner=player, kind=Account.Kind.PLAYER_HOLD, currency_id=currency
    ).first()
    return account.balance if account else Decimal(0)


def wait_for(check, *, timeout: float = 15.0, what: str = "condition"):
    """Poll `check` until it returns something truthy (the worker is another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def without_minimal_play_rule():
    """Withdrawal tests that are not about compliance: a deposit followed straight by a
    withdrawal is what the minimal-play AML rule sends to review."""
    AmlRule.objects.filter(kind="minimal_play").update(is_enabled=False)
