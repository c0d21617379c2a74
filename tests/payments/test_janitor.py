"""The janitor and expired deposits: cancelled at the provider where it can, expired even when
the provider cannot be reached, never while a payment is still confirming."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from payments import providers, services
from payments.models import Deposit
from payments.providers.base import (
    CANCELLED,
    PENDING,
    SUCCEEDED,
    ProviderResult,
    ProviderUnavailable,
)
from tests.payments.factories import cash, make_player
from tests.payments.scripted import ScriptedConnector, install_scripted_provider

pytestmark = pytest.mark.django_db


class Provider(ScriptedConnector):
    """What the provider says, set per test."""

    status_answer: ProviderResult | Exception | None = None
    cancel_answer: ProviderResult | None = None
    cancelled: list = []

    def fetch_payment_status(self, *, deposit):
        if isinstance(self.status_answer, Exception):
            raise self.status_answer
        return self.status_answer

    def cancel_payment(self, *, deposit):
        type(self).cancelled.append(deposit.reference)
        return self.cancel_answer


@pytest.fixture
def expired_deposit(monkeypatch):
    install_scripted_provider(monkeypatch)
    monkeypatch.setitem(providers.CONNECTORS, "scripted", Provider)
    Provider.status_answer, Provider.cancel_answer, Provider.cancelled = None, None, []
    player = make_player()
    deposit = services.create_deposit(
        player=player, method_code="scripted", amount="30.00", currency="EUR", idempotency_key="j"
    )
    past = timezone.now() - timedelta(minutes=1)
    Deposit.objects.filter(pk=deposit.pk).update(expires_at=past, updated_at=past)
    return deposit


def run_janitor():
    return services.poll_stuck_payments(stuck_after=timedelta(0))


def test_an_expired_deposit_is_cancelled_at_the_provider_so_it_can_no_longer_be_paid(
    expired_deposit,
):
    Provider.status_answer = ProviderResult(status=PENDING)
    Provider.cancel_answer = ProviderResult(status=CANCELLED, provider_reference="psp-1")
    counts = run_janitor()
    assert (counts["deposits_expired"], counts["deposits_cancelled_at_provider"]) == (1, 1)
    assert Provider.cancelled == [expired_deposit.reference]
    assert Deposit.objects.get(pk=expired_deposit.pk).status == "expired"


def test_an_expired_deposit_paid_meanwhile_is_credited_not_expired(expired_deposit):
    Provider.status_answer = ProviderResult(status=PENDING)
    Provider.cancel_answer = ProviderResult(status=SUCCEEDED, amount_received=Decimal("30.00"))
    counts = run_janitor()
    assert counts["deposits_expired"] == 0
    assert Deposit.objects.get(pk=expired_deposit.pk).status == "succeeded"
    assert cash(expired_deposit.player) == Decimal("30.00")


def test_an_unreachable_provider_does_not_keep_a_deposit_open_past_its_expiry(expired_deposit):
    Provider.status_answer = ProviderUnavailable("down")
    counts = run_janitor()
    assert (counts["deposits_polled"], counts["deposits_expired"]) == (0, 1)
    assert Provider.cancelled == []  # nothing was sent to a provider we cannot reach
    assert Deposit.objects.get(pk=expired_deposit.pk).status == "expired"

    # The provider completes it after all: credited, flagged late.
    services.apply_deposit_result(
        deposit_id=expired_deposit.pk,
        result=ProviderResult(status=SUCCEEDED),
        source="webhook",
    )
    late = Deposit.objects.get(pk=expired_deposit.pk)
    assert (late.status, late.is_paid_late) == ("succeeded", True)


def test_a_payment_still_confirming_is_never_expired(expired_deposit):
    Provider.status_answer = ProviderResult(status=PENDING, is_awaiting_confirmation=True)
    counts = run_janitor()
    assert counts["deposits_expired"] == 0
    assert Provider.cancelled == []
    assert Deposit.objects.get(pk=expired_deposit.pk).status == "pending"
