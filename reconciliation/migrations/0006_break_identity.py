"""One break per identity: a break that is active or was closed by a person holds its key for
good, so a later run cannot open it again under a new id (and book its money twice).

Before the constraint, stored repeats are converted: per key, the break a person closed (the
earliest, if several) or else the earliest one is kept; every other non-cleared break of the
key gets resolution `superseded` (an active one is also closed, with the audit row a run
leaves). A superseded break that already booked money is not undone here — the ledger is
append-only and a migration is no place to post entries — but each one raises an integrity
alert naming the entry to reverse.
"""

from django.db import migrations, models
from django.db.models import Q
from django.utils import timezone

ACTIVE = ("open", "investigating", "awaiting_approval")
RELEASED = ("cleared", "superseded")


def supersede_repeats(apps, schema_editor):
    Break = apps.get_model("reconciliation", "Break")
    BreakTransition = apps.get_model("reconciliation", "BreakTransition")
    IntegrityRun = apps.get_model("reconciliation", "IntegrityRun")
    IntegrityAlert = apps.get_model("reconciliation", "IntegrityAlert")
    holding = Break.objects.exclude(resolution__in=RELEASED)
    repeated = holding.values("key").annotate(n=models.Count("id")).filter(n__gt=1).values("key")
    now = timezone.now()
    alerts = []
    for key in repeated.values_list("key", flat=True).order_by("key"):
        breaks = list(holding.filter(key=key).order_by("id"))
        closed = [b for b in breaks if b.status not in ACTIVE]
        kept = closed[0] if closed else breaks[0]
        for brk in breaks:
            if brk.pk == kept.pk:
                continue
            reason = f"repeat of break #{kept.pk} ({key}); superseded by migration 0006"
            if brk.status in ACTIVE:
                Break.objects.filter(pk=brk.pk).update(
                    status="resolved", resolution="superseded", closed_at=now
                )
                BreakTransition.objects.create(
                    brk_id=brk.pk,
                    from_status=brk.status,
                    to_status="resolved",
                    actor=None,
                    reason=reason,
                )
            else:
                Break.objects.filter(pk=brk.pk).update(resolution="superseded")
            if brk.entry_id:
                alerts.append(
                    f"Break #{brk.pk} repeated break #{kept.pk} ({key}) and booked ledger "
                    f"entry #{brk.entry_id} a second time: reverse entry #{brk.entry_id}."
                )
    if alerts:
        run = IntegrityRun.objects.create(finished_at=now, is_clean=False)
        IntegrityAlert.objects.bulk_create(
            [IntegrityAlert(run=run, message=message) for message in alerts]
        )


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0005_line_outcomes_without_run_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="break",
            name="resolution",
            field=models.CharField(
                blank=True,
                choices=[
                    ("fixed_by_adjustment", "Fixed By Adjustment"),
                    ("provider_corrected", "Provider Corrected"),
                    ("accepted", "Accepted"),
                    ("cleared", "Cleared by a later run"),
                    ("superseded", "Repeated an earlier break of the same identity"),
                ],
                max_length=24,
            ),
        ),
        migrations.RunPython(supersede_repeats, migrations.RunPython.noop),
        migrations.RemoveConstraint(
            model_name="break",
            name="one_active_break_per_key",
        ),
        migrations.AddConstraint(
            model_name="break",
            constraint=models.UniqueConstraint(
                condition=~Q(resolution__in=["cleared", "superseded"]),
                fields=("key",),
                name="one_break_per_identity",
            ),
        ),
        migrations.AddConstraint(
            model_name="break",
            constraint=models.UniqueConstraint(fields=("entry",), name="one_break_per_entry"),
        ),
        migrations.AlterModelOptions(
            name="break",
            options={
                "ordering": ["-detected_at", "-id"],
                "permissions": [
                    ("approve_write_off", "Can approve write-offs above the threshold")
                ],
            },
        ),
    ]
