import contextlib
import uuid
from datetime import date
from decimal import Decimal
from unittest import mock

from django.contrib.auth.models import Group
from django.utils import timezone

from compliance.models import KycLevel, KycProfile
from tests.wallets.factories import PlayerFactory, StaffFactory
from wallets import services as wallet_services

ADULT = date(1990, 5, 17)


def make_player(*, level=KycLevel.VERIFIED, date_of_birth=ADULT, country="MT", **fields):
    """A player at a KYC level (set directly: these tests are about what levels allow)."""
    player = PlayerFactory(date_of_birth=date_of_birth, country=country, **fields)
    if level != KycLevel.NONE:
        KycProfile.objects.create(player=player, level=level)
    return player


def staff(role: str):
    user = StaffFactory()
    user.groups.add(Group.objects.get(name=role))
    return type(user).objects.get(pk=user.pk)  # fresh: no cached permissions


def officer():
    return staff("Compliance officer")


def operator():
    return staff("Operator")


@contextlib.contextmanager
def at(moment):
    """Everything inside happens at `moment` (ledger rows get it as created_at)."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def ago(**delta):
    return timezone.now() - timezone.timedelta(**delta)


def deposit(player, amount, currency="EUR", *, when=None, instrument="", instrument_type="card"):
    metadata = {}
    if instrument:
        metadata = {"instrument_fingerprint": instrument, "instrument_type": instrument_type}
    with at(when) if when else contextlib.nullcontext():
        return wallet_services.credit_deposit(
            player=player,
            currency=currency,
            amount=Decimal(amount),
            provider_code="test-psp",
            idempotency_key=f"dep-{uuid.uuid4()}",
            metadata=metadata,
        )


def withdraw(player, amount, currency="EUR", *, when=None, instrument="", settle=False):
    metadata = {"instrument_fingerprint": instrument} if instrument else {}
    with at(when) if when else contextlib.nullcontext():
        entry = wallet_services.hold_withdrawal(
            player=player,
            currency=currency,
            amount=Decimal(amount),
            idempotency_key=f"wd-{uuid.uuid4()}",
            metadata=metadata,
        )
        if settle:
            entry = wallet_services.settle_withdrawal(
                player=player,
                currency=currency,
                amount=Decimal(amount),
                provider_code="test-psp",
                idempotency_key=f"settle-{uuid.uuid4()}",
            )
    return entry


def bet(player, amount, currency="EUR", *, when=None):
    with at(when) if when else contextlib.nullcontext():
        return wallet_services.debit_bet(
            player=player,
            currency=currency,
            amount=Decimal(amount),
            idempotency_key=f"bet-{uuid.uuid4()}",
        )
