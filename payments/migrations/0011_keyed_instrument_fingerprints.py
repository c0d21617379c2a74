"""Instrument fingerprints become keyed and versioned ("v<N>:<HMAC hex>", wallets/fingerprints.py):
the column widens for the prefix and every stored deposit fingerprint is upgraded in place
(each version wraps the one before, so the unkeyed SHA-256 of old rows upgrades without the
identifier, which was never stored). The ledger's copies stay as they were (append-only);
compliance upgrades what it reads. The same rewrite runs after a key rotation:
`manage.py refingerprint_instruments`. The review queue gets its own permission."""

from django.db import migrations, models

from wallets import fingerprints


def upgrade_deposits(apps, schema_editor):
    Deposit = apps.get_model("payments", "Deposit")
    stale = Deposit.objects.exclude(payer_instrument_fingerprint="").values_list(
        "payer_instrument_fingerprint", flat=True
    )
    for old in sorted(set(stale)):
        new = fingerprints.upgrade(old)
        if new != old:
            Deposit.objects.filter(payer_instrument_fingerprint=old).update(
                payer_instrument_fingerprint=new
            )


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0010_provider_secrets_at_rest"),
    ]

    operations = [
        migrations.AlterField(
            model_name="deposit",
            name="payer_instrument_fingerprint",
            field=models.CharField(blank=True, db_index=True, max_length=80),
        ),
        # A keyed fingerprint cannot be turned back into the unkeyed one: backwards keeps it.
        migrations.RunPython(upgrade_deposits, migrations.RunPython.noop),
        migrations.AlterModelOptions(
            name="withdrawalreviewqueue",
            options={
                "permissions": [
                    ("review_withdrawals", "Can approve or reject withdrawals in review")
                ],
                "verbose_name": "withdrawal awaiting review",
                "verbose_name_plural": "withdrawal review queue",
            },
        ),
    ]
