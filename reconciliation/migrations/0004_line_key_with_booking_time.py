"""Re-key settlement lines: (provider, booking time, 64-bit fingerprint) instead of
(provider, md5 of every field). Stored lines are re-hashed from their stored values with the
expression the importer uses (services.importing.FINGERPRINT, frozen here)."""

from django.db import migrations, models

FINGERPRINT = (
    "hashtextextended(concat_ws('|', record_type, provider_type, provider_reference, "
    "payment_reference, merchant_reference, currency, net_currency, batch), 0) "
    "# hash_numeric_extended(gross, 1) # hash_numeric_extended(fee, 2) "
    "# hash_numeric_extended(net, 3)"
)


def rehash(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        # Elsewhere (the SQLite demo) no line was ever loaded: loading needs COPY.
        return
    schema_editor.execute(
        "ALTER TABLE reconciliation_settlementline ALTER COLUMN line_hash TYPE bigint "
        f"USING ({FINGERPRINT})"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0003_staging_without_per_row_checks"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="settlementline",
            name="settlement_line_once_per_provider",
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="settlementline",
                    name="line_hash",
                    field=models.BigIntegerField(),
                ),
            ],
            database_operations=[migrations.RunPython(rehash, migrations.RunPython.noop)],
        ),
        migrations.AddConstraint(
            model_name="settlementline",
            constraint=models.UniqueConstraint(
                fields=("provider_code", "booked_at", "line_hash"),
                name="settlement_line_once_per_provider",
            ),
        ),
    ]
