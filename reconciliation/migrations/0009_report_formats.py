"""Per provider and layout parsing policy (delimiter, decimal and thousands separators,
encoding) and the count of trailing summary lines an import skipped. New tables and a
defaulted column: existing imports and providers read as before (comma, point, UTF-8)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0008_derived_payouts"),
    ]

    operations = [
        migrations.AddField(
            model_name="settlementimport",
            name="summary_lines_skipped",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Trailing totals or summary lines the layout recognised and skipped.",
            ),
        ),
        migrations.CreateModel(
            name="ReportFormat",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("provider_code", models.CharField(max_length=64)),
                (
                    "layout",
                    models.CharField(
                        choices=[
                            ("adyen_settlement_details", "Adyen settlement details report"),
                            ("stripe_itemized_payout", "Stripe itemized payout reconciliation"),
                            ("sandbox_settlement", "Sandbox provider settlement file"),
                        ],
                        max_length=32,
                    ),
                ),
                (
                    "delimiter",
                    models.CharField(
                        choices=[
                            (",", "Comma (,)"),
                            (";", "Semicolon (;)"),
                            ("\t", "Tab"),
                            ("|", "Pipe (|)"),
                        ],
                        default=",",
                        max_length=2,
                    ),
                ),
                (
                    "decimal_separator",
                    models.CharField(
                        choices=[(".", "Point (1234.56)"), (",", "Comma (1234,56)")],
                        default=".",
                        max_length=1,
                    ),
                ),
                (
                    "thousands_separator",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("", "None (1234.56)"),
                            (",", "Comma (1,234.56)"),
                            (".", "Point (1.234,56)"),
                            (" ", "Space (1 234,56; also no-break spaces)"),
                            ("'", "Apostrophe (1'234.56)"),
                        ],
                        default="",
                        max_length=1,
                    ),
                ),
                (
                    "encoding",
                    models.CharField(
                        choices=[
                            ("utf-8", "UTF-8"),
                            ("windows-1252", "Windows-1252"),
                            ("iso-8859-1", "ISO-8859-1 (Latin-1)"),
                            ("iso-8859-15", "ISO-8859-15 (Latin-9)"),
                        ],
                        default="utf-8",
                        max_length=16,
                    ),
                ),
            ],
            options={
                "ordering": ["provider_code", "layout"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("provider_code", "layout"), name="one_report_format_per_layout"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("decimal_separator", models.F("thousands_separator")), _negated=True
                        ),
                        name="report_format_separators_differ",
                    ),
                ],
            },
        ),
    ]
