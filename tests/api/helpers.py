"""Clients for the three kinds of API caller, and the row counts a refusal must not change."""

from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from compliance.models import DepositLimit, SelfExclusion
from payments.models import Deposit, PayoutInstrument, Withdrawal
from tests.wallets.factories import StaffFactory
from wallets.auth import issue_player_token
from wallets.models import GameRound, GameTransaction, JournalEntry, Player, Posting


def as_player(player) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_player_token(player)}")
    return client


def as_casino_server(*perms: str, superuser: bool = False) -> APIClient:
    """A staff integration user holding `app_label.codename` permissions."""
    user = StaffFactory(is_superuser=superuser)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def written() -> dict[str, int]:
    """Rows of everything an API call could write."""
    models = (
        Player,
        JournalEntry,
        Posting,
        GameRound,
        GameTransaction,
        Deposit,
        Withdrawal,
        PayoutInstrument,
        DepositLimit,
        SelfExclusion,
    )
    return {model.__name__: model.objects.count() for model in models}


def error(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    return response.json()["error"]
