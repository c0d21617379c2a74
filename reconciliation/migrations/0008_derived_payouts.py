"""Payouts of reports that list a payout only through the lines it settles (Stripe's itemized
payout reconciliation) were never booked. Loading now derives one payout line per batch and
currency; this migration derives them for the Stripe reports already loaded, booked at the
batch's last line (the file's payout time is not re-read here), so the next matching and
settlement runs book the money that reached the operator's bank."""

from django.db import migrations, models

FINGERPRINT = (
    "hashtextextended(concat_ws('|', record_type, provider_type, provider_reference, "
    "payment_reference, merchant_reference, currency, net_currency, batch), 0) "
    "# hash_numeric_extended(gross, 1) # hash_numeric_extended(fee, 2) "
    "# hash_numeric_extended(net, 3)"
)


def derive_payouts(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # Loading needs COPY: elsewhere no line was ever loaded.
    schema_editor.execute(
        "INSERT INTO reconciliation_settlementline (settlement_import_id, provider_code, "
        "line_number, record_type, provider_type, provider_reference, payment_reference, "
        "merchant_reference, gross, fee, net, currency, net_currency, booked_at, batch, "
        f"line_hash) SELECT import_id, provider_code, 0, record_type, provider_type, "
        "provider_reference, '', '', gross, 0, net, currency, net_currency, booked_at, batch, "
        f"{FINGERPRINT} FROM (SELECT max(s.settlement_import_id) AS import_id, "
        "s.provider_code, 'merchant_payout'::text AS record_type, "
        "'automatic_payout'::text AS provider_type, s.batch AS provider_reference, "
        "''::text AS payment_reference, ''::text AS merchant_reference, "
        "-sum(s.net) AS gross, 0::numeric AS fee, -sum(s.net) AS net, "
        "s.net_currency AS currency, s.net_currency, max(s.booked_at) AS booked_at, s.batch "
        "FROM reconciliation_settlementline s JOIN reconciliation_settlementimport i "
        "ON i.id = s.settlement_import_id AND i.layout = 'stripe_itemized_payout' "
        "WHERE s.batch <> '' AND s.record_type <> 'merchant_payout' "
        "AND NOT EXISTS (SELECT 1 FROM reconciliation_settlementline p "
        "WHERE p.provider_code = s.provider_code AND p.batch = s.batch "
        "AND p.net_currency = s.net_currency AND p.record_type = 'merchant_payout') "
        "GROUP BY s.provider_code, s.batch, s.net_currency HAVING sum(s.net) <> 0) payout "
        "ON CONFLICT (provider_code, booked_at, line_hash) DO NOTHING"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0007_import_identity_and_merchant_accounts"),
    ]

    operations = [
        migrations.AddField(
            model_name="settlementimport",
            name="payouts_derived",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Payout lines derived from a report that lists a payout only through the lines it settles (Stripe's automatic_payout_id); their line number is 0.",
            ),
        ),
        migrations.RunPython(derive_payouts, migrations.RunPython.noop),
    ]
