import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from compliance.models import KycLevel
from payments import services
from payments.models import PaymentProvider, Withdrawal
from payments.providers.base import provider_secret
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


def provider_secrets(provider) -> dict[str, str]:
    return {
        name: provider_secret(provider, name)
        for name in PaymentProvider.SECRET_NAMES
        if provider_secret(provider, name)
    }


@pytest.mark.parametrize("protocol", ["stripe", "adyen", "skrill", "btcpay", "berlin_group"])
def test_provider_secrets_are_never_rendered_in_the_admin(client, providers, protocol):
    client.force_login(superuser("admin"))
    provider = PaymentProvider.objects.get(pk=providers[protocol].pk)
    page = client.get(f"/admin/payments/paymentprovider/{provider.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    secrets = provider_secrets(provider)
    assert secrets
    for name, value in secrets.items():
        assert value not in html, name
        assert value[-8:] not in html, name
        assert "Stored (encrypted)" in html
    # The options box shows the other options only.
    for name in PaymentProvider.SECRET_OPTIONS:
        assert f"&quot;{name}&quot;" not in html


def provider_form_data(provider, **changes):
    from payments.admin import ProviderForm

    form = ProviderForm(instance=provider)
    data = {
        "code": provider.code,
        "name": provider.name,
        "kind": provider.kind,
        "protocol": provider.protocol,
        "is_enabled": "on",
        "api_base_url": provider.api_base_url,
        "merchant_id": provider.merchant_id,
        "currencies": [c.code for c in provider.currencies.all()],
        "fee_percent": "0",
        "fee_fixed": "0",
        "deposit_timeout_seconds": "1800",
        "options": form["options"].value(),
    }
    return {**data, **changes}


def test_secret_options_are_write_only_kept_when_blank_and_removable(providers):
    from payments.admin import ProviderForm

    adyen = PaymentProvider.objects.get(pk=providers["adyen"].pk)
    password = adyen.options["webhook_password"]
    username = adyen.options["webhook_username"]

    form = ProviderForm(provider_form_data(adyen, name="Kept"), instance=adyen)
    assert form.is_valid(), form.errors
    form.save()
    saved = PaymentProvider.objects.get(pk=adyen.pk)
    assert (saved.name, saved.options["webhook_password"]) == ("Kept", password)
    assert saved.options["webhook_username"] == username

    form = ProviderForm(provider_form_data(saved, webhook_password="new-pw"), instance=saved)
    assert form.is_valid(), form.errors
    form.save()
    saved = PaymentProvider.objects.get(pk=adyen.pk)
    assert provider_secret(saved, "webhook_password") == "new-pw"

    form = ProviderForm(
        provider_form_data(saved, clear_secrets=["webhook_password", "api_key"]), instance=saved
    )
    assert form.is_valid(), form.errors
    form.save()
    saved = PaymentProvider.objects.get(pk=adyen.pk)
    assert "webhook_password" not in saved.options and saved.api_key == ""
    assert saved.webhook_secret == adyen.webhook_secret


def test_a_secret_typed_into_the_options_box_is_refused(providers):
    from payments.admin import ProviderForm

    adyen = PaymentProvider.objects.get(pk=providers["adyen"].pk)
    options = json.dumps({"webhook_username": "u", "webhook_password": "typed-in-clear"})
    form = ProviderForm(provider_form_data(adyen, options=options), instance=adyen)
    assert not form.is_valid()
    assert "write-only field" in str(form.errors["options"])


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
