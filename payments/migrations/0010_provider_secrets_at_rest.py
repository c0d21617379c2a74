"""Payment-provider secrets encrypted at rest: `api_key`, `webhook_secret` and the secret keys
of `options` (SECRET_OPTIONS) become Fernet tokens under the cipher game-provider secrets use
(wallets/secret_box.py, keys GAME_PROVIDER_SECRET_KEYS). The columns widen to text first (a
token is longer than its secret), then every existing row is encrypted in place with raw SQL:
the historical model would try to decrypt the plaintext it reads. Idempotent (a value that is
already a token is left alone) and reversible (backwards decrypts)."""

import json

from cryptography.fernet import InvalidToken
from django.db import migrations

import wallets.secret_box

SECRET_OPTIONS = ("webhook_password", "tpp_signing_key")


def _is_token(value: str) -> bool:
    try:
        wallets.secret_box.decrypt(value)
    except InvalidToken:
        return False
    return True


def _encrypt(value):
    if isinstance(value, str) and value and not _is_token(value):
        return wallets.secret_box.encrypt(value)
    return value


def _decrypt(value):
    if isinstance(value, str) and value and _is_token(value):
        return wallets.secret_box.decrypt(value)
    return value


def _rewrite(apps, schema_editor, transform):
    table = apps.get_model("payments", "PaymentProvider")._meta.db_table
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, api_key, webhook_secret, {quote('options')} FROM {quote(table)}"
        )
        rows = cursor.fetchall()
        for pk, api_key, webhook_secret, options in rows:
            options = json.loads(options) if isinstance(options, str) else options
            if isinstance(options, dict):
                options = {
                    k: transform(v) if k in SECRET_OPTIONS else v for k, v in options.items()
                }
            cursor.execute(
                f"UPDATE {quote(table)} SET api_key = %s, webhook_secret = %s, "
                f"{quote('options')} = %s WHERE id = %s",
                [transform(api_key), transform(webhook_secret), json.dumps(options), pk],
            )


def encrypt_existing(apps, schema_editor):
    _rewrite(apps, schema_editor, _encrypt)


def decrypt_existing(apps, schema_editor):
    _rewrite(apps, schema_editor, _decrypt)


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0009_refund_returned"),
    ]

    operations = [
        migrations.AlterField(
            model_name="paymentprovider",
            name="api_key",
            field=wallets.secret_box.EncryptedTextField(blank=True),
        ),
        migrations.AlterField(
            model_name="paymentprovider",
            name="webhook_secret",
            field=wallets.secret_box.EncryptedTextField(blank=True),
        ),
        migrations.AlterField(
            model_name="paymentprovider",
            name="options",
            field=wallets.secret_box.EncryptedKeysJSONField(
                blank=True, default=dict, secret_keys=SECRET_OPTIONS
            ),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
    ]
