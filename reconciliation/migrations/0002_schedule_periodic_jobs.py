from django.conf import settings
from django.db import migrations

JOBS = [
    (
        "Reconciliation: ledger integrity check",
        "reconciliation.tasks.check_ledger_integrity",
        "RECONCILIATION_INTEGRITY_INTERVAL_SECONDS",
    ),
    (
        "Reconciliation: import reports from the watched folder",
        "reconciliation.tasks.scan_settlement_inbox",
        "RECONCILIATION_INBOX_INTERVAL_SECONDS",
    ),
]


def schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, setting in JOBS:
        every, _ = IntervalSchedule.objects.get_or_create(
            every=getattr(settings, setting), period="seconds"
        )
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": every})
    # The sandbox providers close their day after midnight UTC.
    nightly, _ = CrontabSchedule.objects.get_or_create(
        minute="15", hour="0", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name="Reconciliation: sandbox providers' daily settlement files",
        defaults={"task": "reconciliation.tasks.produce_sandbox_settlements", "crontab": nightly},
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        task__startswith="reconciliation.tasks."
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
