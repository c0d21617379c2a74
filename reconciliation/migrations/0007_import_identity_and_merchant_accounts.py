"""An import is identified by (provider, layout, checksum) among imports not refused, instead of
by checksum alone. Stored imports were unique by checksum, so they satisfy the narrower key
as they are; nothing is converted. Provider policies gain their merchant account names
(empty: not checked)."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0006_break_identity"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="providerpolicy",
            name="merchant_accounts",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="The provider's merchant account names, e.g. [\"CasinoEU\"]. A report whose merchant account column names another account (or another provider's) is refused.",
            ),
        ),
        migrations.AlterField(
            model_name="settlementimport",
            name="checksum",
            field=models.CharField(db_index=True, max_length=64),
        ),
        migrations.AddConstraint(
            model_name="settlementimport",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status", "rejected"), _negated=True),
                fields=("provider_code", "layout", "checksum"),
                name="one_live_import_per_file",
            ),
        ),
    ]
