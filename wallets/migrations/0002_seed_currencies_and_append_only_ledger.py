from django.db import migrations

from wallets.currencies import SEEDED_CURRENCIES

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are append-only: % on % refused; post a reversing entry',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER journalentry_append_only BEFORE UPDATE OR DELETE ON wallets_journalentry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER posting_append_only BEFORE UPDATE OR DELETE ON wallets_posting
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
"""

DROP_APPEND_ONLY = """
DROP TRIGGER IF EXISTS posting_append_only ON wallets_posting;
DROP TRIGGER IF EXISTS journalentry_append_only ON wallets_journalentry;
DROP FUNCTION IF EXISTS ledger_refuse_change();
"""


def seed_currencies(apps, schema_editor):
    Currency = apps.get_model("wallets", "Currency")
    for code, name, exponent, is_crypto in SEEDED_CURRENCIES:
        Currency.objects.update_or_create(
            code=code, defaults={"name": name, "exponent": exponent, "is_crypto": is_crypto}
        )


def install_append_only(apps, schema_editor):
    # The demo runs on SQLite, which has no plpgsql; production and the tests run PostgreSQL.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY, params=None)


def remove_append_only(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_APPEND_ONLY, params=None)


class Migration(migrations.Migration):
    dependencies = [("wallets", "0001_initial")]

    operations = [
        migrations.RunPython(seed_currencies, migrations.RunPython.noop),
        migrations.RunPython(install_append_only, remove_append_only),
    ]
