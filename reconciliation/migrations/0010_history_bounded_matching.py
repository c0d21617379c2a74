"""History-bounded matching and an incremental integrity job (issue 15, item 4).

Existing data is converted, not reset:
* a watermark per provider with lines: `lines_through` is the highest line id below which
  every line of the provider has an outcome (the first line still without one, minus one);
  `open_from` stays null, so the first run after the upgrade reads our transactions from the
  provider's first report, as runs did before, and sets it;
* `DailyLineTotal` is summed from every line already loaded (one pass, here only), so the
  integrity job starts from exact totals with nothing marked dirty;
* two indexes on line outcomes: the open ones (breaks, pending), and the transaction each
  outcome took.
"""

import django.db.models.deletion
from django.db import migrations, models


def convert(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # Loading needs COPY: elsewhere no line was ever loaded.
    schema_editor.execute(
        "INSERT INTO reconciliation_matchingwatermark (provider_code, lines_through, updated_at) "
        "SELECT l.provider_code, coalesce((SELECT min(u.id) - 1 FROM "
        "reconciliation_settlementline u WHERE u.provider_code = l.provider_code "
        "AND NOT EXISTS (SELECT 1 FROM reconciliation_linematch m WHERE m.line_id = u.id)), "
        "max(l.id)), now() FROM reconciliation_settlementline l GROUP BY l.provider_code"
    )
    schema_editor.execute(
        "INSERT INTO reconciliation_dailylinetotal (provider_code, day, currency, lines, net, "
        "paid_out, summed_at) SELECT provider_code, (booked_at AT TIME ZONE 'UTC')::date, "
        "net_currency, count(*), sum(net), "
        "coalesce(-sum(net) FILTER (WHERE record_type = 'merchant_payout'), 0), now() "
        "FROM reconciliation_settlementline GROUP BY 1, 2, 3"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0009_report_formats"),
    ]

    operations = [
        migrations.CreateModel(
            name="DailyLineTotal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("provider_code", models.CharField(max_length=64)),
                ("day", models.DateField()),
                ("currency", models.CharField(max_length=8)),
                ("lines", models.PositiveIntegerField(default=0)),
                ("net", models.DecimalField(decimal_places=8, default=0, max_digits=28)),
                ("paid_out", models.DecimalField(decimal_places=8, default=0, max_digits=28)),
                ("summed_at", models.DateTimeField()),
            ],
            options={
                "ordering": ["provider_code", "day", "currency"],
            },
        ),
        migrations.CreateModel(
            name="DirtyLineDay",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("provider_code", models.CharField(max_length=64)),
                ("day", models.DateField()),
            ],
        ),
        migrations.CreateModel(
            name="MatchingWatermark",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("provider_code", models.CharField(max_length=64, unique=True)),
                ("lines_through", models.BigIntegerField(default=0)),
                ("open_from", models.DateTimeField(blank=True, null=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["provider_code"],
            },
        ),
        migrations.AddField(
            model_name="integrityrun",
            name="days_resummed",
            field=models.PositiveIntegerField(
                default=0, help_text="Provider days whose line totals this run summed again."
            ),
        ),
        migrations.AddIndex(
            model_name="linematch",
            index=models.Index(
                condition=models.Q(("status__in", ["break", "pending"])),
                fields=["line"],
                name="line_match_open",
            ),
        ),
        migrations.AddIndex(
            model_name="linematch",
            index=models.Index(
                condition=models.Q(("internal_id__isnull", False)),
                fields=["internal_id", "internal_kind"],
                name="line_match_transaction",
            ),
        ),
        migrations.AddConstraint(
            model_name="dailylinetotal",
            constraint=models.UniqueConstraint(
                fields=("provider_code", "day", "currency"), name="one_total_per_provider_day"
            ),
        ),
        migrations.AddConstraint(
            model_name="dirtylineday",
            constraint=models.UniqueConstraint(
                fields=("provider_code", "day"), name="one_dirty_mark_per_day"
            ),
        ),
        migrations.AddField(
            model_name="matchingwatermark",
            name="last_run",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="reconciliation.reconciliationrun",
            ),
        ),
        migrations.RunPython(convert, migrations.RunPython.noop),
    ]
