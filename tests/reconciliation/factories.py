"""Payments state for reconciliation tests, built through payments' own services.

The provider's HTTP API is the only thing replaced (`StubAdapter`): each deposit, payout and
refund is started by the payments service and completed with `apply_*_result`, exactly as a
provider webhook would complete it, so every ledger entry is the one production writes.
"""

import uuid
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from payments import services as payments
from payments.models import PaymentMethod, PaymentProvider, PayoutInstrument
from payments.providers.base import (
    FAILED,
    PENDING,
    SUCCEEDED,
    PaymentAdapter,
    ProviderResult,
)
from tests.compliance.factories import make_player
from wallets.models import Currency


class StubAdapter(PaymentAdapter):
    """Accepts every request as pending and names it `psp-<our reference>`; everything else
    is payments' own adapter base."""

    def start_payment(self, *, deposit, notify_url, return_url, payment_method=None):
        return ProviderResult(status=PENDING, provider_reference=f"psp-{deposit.reference}")

    def start_payout(self, *, withdrawal, notify_url):
        return ProviderResult(status=PENDING, provider_reference=f"psp-{withdrawal.reference}")

    def refund(self, *, refund, notify_url):
        return ProviderResult(status=PENDING, provider_reference=f"psp-{refund.reference}")


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PaymentProvider
        django_get_or_create = ["code"]
        skip_postgeneration_save = True

    code = "adyen"
    name = factory.LazyAttribute(lambda p: p.code.title())
    kind = PaymentProvider.Kind.CARD
    protocol = PaymentProvider.Protocol.ADYEN
    api_base_url = "http://127.0.0.1:9/"

    @factory.post_generation
    def currencies(self, create, extracted, **kwargs):
        self.currencies.set(Currency.objects.filter(code__in=extracted or ["EUR", "USD"]))


class StaffUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"finance{n}")
    is_staff = True


def method_for(provider: PaymentProvider) -> PaymentMethod:
    method, _ = PaymentMethod.objects.get_or_create(
        code=f"{provider.code}-method", defaults={"name": provider.name, "provider": provider}
    )
    method.currencies.set(provider.currencies.all())
    return method


def deposit(provider, amount, *, currency="EUR", player=None, succeed=True, received=None):
    """A deposit started through payments and completed (or failed) as its webhook would."""
    player = player or make_player()
    started = payments.create_deposit(
        player=player,
        method_code=method_for(provider).code,
        amount=Decimal(amount),
        currency=currency,
        idempotency_key=str(uuid.uuid4()),
    )
    result = ProviderResult(
        status=SUCCEEDED if succeed else FAILED,
        provider_reference=started.provider_reference,
        amount_received=Decimal(received) if received is not None else None,
        decline_code="" if succeed else "do_not_honor",
    )
    return payments.apply_deposit_result(
        deposit_id=started.pk, result=result, source="webhook", reason="test"
    )


def withdrawal(provider, amount, *, player, currency="EUR", succeed=True):
    """A small withdrawal: requested, auto-approved, sent, then paid (or failed)."""
    instrument, _ = PayoutInstrument.objects.get_or_create(
        player=player,
        kind=PayoutInstrument.Kind.CARD_TOKEN,
        provider=provider,
        network="",
        identifier=f"tok_{player.external_id}",
    )
    requested = payments.request_withdrawal(
        player=player,
        instrument=instrument,
        amount=Decimal(amount),
        currency=currency,
        idempotency_key=str(uuid.uuid4()),
    )
    sent = payments.start_payout(withdrawal_id=requested.pk)
    result = ProviderResult(
        status=SUCCEEDED if succeed else FAILED,
        provider_reference=sent.provider_reference,
        decline_code="" if succeed else "account_closed",
    )
    return payments.apply_withdrawal_result(withdrawal_id=sent.pk, result=result, source="webhook")


def refund(of_deposit, amount, *, actor):
    started = payments.refund_deposit(
        deposit=of_deposit, amount=Decimal(amount), actor=actor, reason="player asked"
    )
    return payments.apply_refund_result(
        refund_id=started.pk,
        result=ProviderResult(status=SUCCEEDED, provider_reference=started.provider_reference),
        source="webhook",
    )
