"""Payment-provider secrets at rest: the raw table holds Fernet tokens only, connectors get the
clear values through `provider_secret` (environment first), the admin never renders one, the
migration encrypts rows written before it, and the encryption key rotates."""

import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from payments import services
from payments.models import PaymentProvider
from payments.providers import base
from payments.providers.base import provider_secret
from wallets import game_services, secret_box
from wallets.models import GameProvider

KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def raw_rows() -> dict[str, tuple[str, str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT code, api_key, webhook_secret, options::text FROM payments_paymentprovider"
        )
        return {code: (api_key, secret, options) for code, api_key, secret, options in cursor}


def clear_secrets(provider) -> dict[str, str]:
    return {
        name: provider_secret(provider, name)
        for name in PaymentProvider.SECRET_NAMES
        if provider_secret(provider, name)
    }


@pytest.fixture
def providers():
    made = services.ensure_sandbox_providers(base_url="http://127.0.0.1:9")
    return {p.protocol: PaymentProvider.objects.get(pk=p.pk) for p in made}


@pytest.mark.django_db
def test_the_raw_table_holds_no_plaintext_secret(providers):
    raw = raw_rows()
    seen = set()
    for provider in providers.values():
        secrets = clear_secrets(provider)
        seen |= set(secrets)
        api_key, webhook_secret, options = raw[provider.code]
        row = " ".join([api_key, webhook_secret, options])
        for name, value in secrets.items():
            assert value not in row, f"{provider.code}.{name} is stored in clear"
            # Nor any long piece of it (a PEM body line, a key's tail).
            assert value[-12:] not in row and value[:12] not in row
        assert secret_box.decrypt(api_key) == provider.api_key
        if provider.webhook_secret:
            assert secret_box.decrypt(webhook_secret) == provider.webhook_secret
        stored_options = json.loads(options)
        for name in PaymentProvider.SECRET_OPTIONS:
            if name in provider.options:
                assert secret_box.decrypt(stored_options[name]) == provider.options[name]
    # Every kind of secret the connectors keep was checked: both columns and both options.
    assert seen == set(PaymentProvider.SECRET_NAMES)
    # The non-secret options stay readable (the admin shows them, queries may use them).
    assert json.loads(raw["sandbox-wallet"][2])["merchant_email"].endswith("sandbox-skrill.test")


@pytest.mark.django_db
def test_connectors_read_the_clear_secret_and_the_environment_wins(providers, monkeypatch):
    adyen = providers["adyen"]
    stored = adyen.options["webhook_password"]
    assert provider_secret(adyen, "webhook_password") == stored
    assert base.PaymentAdapter(adyen).api_key == adyen.api_key
    monkeypatch.setenv("PAYMENTS_SANDBOX_ADYEN_WEBHOOK_PASSWORD", "from-the-environment")
    monkeypatch.setenv("PAYMENTS_SANDBOX_ADYEN_API_KEY", "key-from-the-environment")
    assert provider_secret(adyen, "webhook_password") == "from-the-environment"
    assert base.PaymentAdapter(adyen).api_key == "key-from-the-environment"
    with pytest.raises(ValueError):
        provider_secret(adyen, "merchant_id")


@pytest.mark.django_db
def test_a_secret_no_key_opens_reads_empty_and_survives_a_save(providers):
    with override_settings(GAME_PROVIDER_SECRET_KEYS=[KEY_A]):
        PaymentProvider.objects.filter(pk=providers["stripe"].pk).update(api_key="sk_live_1")
        token = raw_rows()["sandbox-card"][0]
    loaded = PaymentProvider.objects.get(pk=providers["stripe"].pk)
    assert isinstance(loaded.api_key, secret_box.UnreadableSecret)
    assert provider_secret(loaded, "api_key") == ""  # fails closed: no request is signed
    loaded.name = "Renamed"
    loaded.save()
    assert raw_rows()["sandbox-card"][0] == token
    with override_settings(GAME_PROVIDER_SECRET_KEYS=[KEY_A]):
        assert PaymentProvider.objects.get(pk=loaded.pk).api_key == "sk_live_1"


@pytest.mark.django_db
def test_rotating_the_encryption_key_re_encrypts_every_stored_secret():
    with override_settings(GAME_PROVIDER_SECRET_KEYS=[KEY_A]):
        made = services.ensure_sandbox_providers(base_url="http://127.0.0.1:9")
        before = {p.code: clear_secrets(p) for p in made}
        game, game_secret = game_services.create_provider(
            name="Studio", code="studio", currencies=["EUR"]
        )
    with override_settings(GAME_PROVIDER_SECRET_KEYS=[KEY_B, KEY_A]):
        with pytest.raises(CommandError):
            call_command("reencrypt_secrets", "--check")
        call_command("reencrypt_secrets")
        call_command("reencrypt_secrets", "--check")
    # Only the new key from here on: every secret still reads the same.
    with override_settings(GAME_PROVIDER_SECRET_KEYS=[KEY_B]):
        after = {p.code: clear_secrets(p) for p in PaymentProvider.objects.all()}
        assert after == before
        game = GameProvider.objects.get(pk=game.pk)
        assert game_services.provider_secret(game) == game_secret
        for api_key, webhook_secret, options in raw_rows().values():
            Fernet(KEY_B).decrypt(api_key.encode())
            if webhook_secret:
                Fernet(KEY_B).decrypt(webhook_secret.encode())
            for name in PaymentProvider.SECRET_OPTIONS:
                if name in json.loads(options):
                    Fernet(KEY_B).decrypt(json.loads(options)[name].encode())


@pytest.mark.django_db
def test_the_key_rotation_command_reports_a_secret_it_cannot_open(providers):
    with override_settings(GAME_PROVIDER_SECRET_KEYS=[KEY_A]):
        PaymentProvider.objects.filter(pk=providers["btcpay"].pk).update(webhook_secret="s")
    with (
        override_settings(GAME_PROVIDER_SECRET_KEYS=[KEY_B]),
        pytest.raises(CommandError, match="no configured key"),
    ):
        call_command("reencrypt_secrets")
    with override_settings(GAME_PROVIDER_SECRET_KEYS=[KEY_A]):
        assert PaymentProvider.objects.get(pk=providers["btcpay"].pk).webhook_secret == "s"


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_rows_stored_in_clear_and_backwards_decrypts_them():
    executor = MigrationExecutor(connection)
    before = [("payments", "0009_refund_returned")]
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(before)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO payments_paymentprovider (code, name, kind, protocol, is_enabled, "
                "api_base_url, api_key, webhook_secret, merchant_id, fee_percent, fee_fixed, "
                "deposit_timeout_seconds, options, created_at) VALUES ('old', 'Old', 'card', "
                "'adyen', true, 'https://x.test/', 'AQE-clear', 'ABCDEF01', 'M', 0, 0, 60, "
                """'{"webhook_username": "u", "webhook_password": "pw-clear"}', now())"""
            )
        executor = MigrationExecutor(connection)
        executor.migrate([("payments", "0010_provider_secrets_at_rest")])
        api_key, webhook_secret, options = raw_rows()["old"]
        assert "clear" not in api_key + options and "ABCDEF01" not in webhook_secret
        assert secret_box.decrypt(api_key) == "AQE-clear"
        assert secret_box.decrypt(webhook_secret) == "ABCDEF01"
        assert json.loads(options)["webhook_username"] == "u"
        assert secret_box.decrypt(json.loads(options)["webhook_password"]) == "pw-clear"
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        api_key, webhook_secret, options = raw_rows()["old"]
        assert (api_key, webhook_secret) == ("AQE-clear", "ABCDEF01")
        assert json.loads(options)["webhook_password"] == "pw-clear"
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(latest)
