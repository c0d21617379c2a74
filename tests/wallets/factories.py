import uuid
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from wallets import services
from wallets.models import Player


class PlayerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Player

    external_id = factory.Sequence(lambda n: f"player-{n:05d}")
    email = factory.LazyAttribute(lambda p: f"{p.external_id}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    country = "MT"


class StaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


def fund(player, amount, currency="EUR", provider="test-psp"):
    """A funded wallet is made by a deposit, never by setting a balance."""
    return services.credit_deposit(
        player=player,
        currency=currency,
        amount=Decimal(amount),
        provider_code=provider,
        idempotency_key=f"fund-{uuid.uuid4()}",
    )


def key() -> str:
    return str(uuid.uuid4())
