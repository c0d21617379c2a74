from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from compliance.models import KycLevel
from payments import services
from payments.models import PaymentProvider, Withdrawal
from tests.payments.factories import fund, key, make_player

pytestmark = pytest.mark.django_db


@pytest.fixture
def providers():
    return {p.protocol: p for p in services.ensure_sandbox_providers(base_url="http://127.0.0.1:9")}


def superuser(name):
    return get_user_model().objects.create_superuser(name, f"{name}@example.com", "pw-for-tests-1")


def in_review(providers, amount="6000.00"):
    player = make_player(level=KycLevel.ENHANCED)
    fund(player, "10000.00")
    instrument = services.add_payout_instrument(
        player=player, kind="iban", identifier="DE89370400440532013000", holder_name="P"
    )
    return services.request_withdrawal(
        player=player, instrument=instrument, amount=amount, currency="EUR", idempotency_key=key()
    )


def test_provider_secrets_are_never_rendered_in_the_admin(client, providers):
    client.force_login(superuser("admin"))
    card = providers["stripe"]
    page = client.get(f"/admin/payments/paymentprovider/{card.pk}/change/")
    assert page.status_code == 200
    assert card.api_key not in page.content.decode()
    assert card.webhook_secret not in page.content.decode()


def test_saving_the_provider_form_with_blank_secrets_keeps_the_stored_ones(providers):
    from payments.admin import ProviderForm

    card = providers["stripe"]
    data = {
        "code": card.code,
        "name": "Renamed",
        "kind": card.kind,
        "protocol": card.protocol,
        "is_enabled": "on",
        "api_base_url": card.api_base_url,
        "merchant_id": card.merchant_id,
        "api_key": "",
        "webhook_secret": "rotated-secret",
        "currencies": ["EUR"],
        "fee_percent": "0",
        "fee_fixed": "0",
        "deposit_timeout_seconds": "1800",
        "options": "{}",
    }
    form = ProviderForm(data, instance=PaymentProvider.objects.get(pk=card.pk))
    assert form.is_valid(), form.errors
    form.save()
    saved = PaymentProvider.objects.get(pk=card.pk)
    assert (saved.name, saved.api_key, saved.webhook_secret) == (
        "Renamed",
        card.api_key,
        "rotated-secret",
    )


def test_review_queue_lists_oldest_first_and_four_eyes_holds_in_the_admin(client, providers):
    first = in_review(providers)
    second = in_review(providers)
    alice, bob = superuser("alice"), superuser("bob")
    client.force_login(alice)
    queue = client.get("/admin/payments/withdrawalreviewqueue/").content.decode()
    assert queue.index(first.reference) < queue.index(second.reference)

    approve = {"action": "approve", "_selected_action": [first.pk], "apply": "1", "reason": "ok"}
    client.post("/admin/payments/withdrawal/", approve)
    response = client.post("/admin/payments/withdrawal/", approve, follow=True)
    assert "already approved" in response.content.decode()
    assert Withdrawal.objects.get(pk=first.pk).status == "in_review"

    client.force_login(bob)
    client.post("/admin/payments/withdrawal/", approve)
    assert Withdrawal.objects.get(pk=first.pk).status == "approved"
    detail = client.get(f"/admin/payments/withdrawal/{first.pk}/change/").content.decode()
    assert "approval 1 of 2" in detail and "in_review" in detail


def test_reject_from_the_admin_needs_a_reason_and_releases_the_hold(client, providers):
    withdrawal = in_review(providers, amount="700.00")
    client.force_login(superuser("carol"))
    client.post(
        "/admin/payments/withdrawal/",
        {"action": "reject", "_selected_action": [withdrawal.pk], "apply": "1", "reason": ""},
    )
    assert Withdrawal.objects.get(pk=withdrawal.pk).status == "in_review"
    client.post(
        "/admin/payments/withdrawal/",
        {"action": "reject", "_selected_action": [withdrawal.pk], "apply": "1", "reason": "AML"},
    )
    withdrawal.refresh_from_db()
    assert withdrawal.status == "rejected"
    from tests.payments.factories import cash

    assert cash(withdrawal.player) == Decimal("10000.00")
    assert PaymentProvider.objects.count() == len(services.SANDBOX_PROVIDERS)
