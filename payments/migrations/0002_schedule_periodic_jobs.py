from django.db import migrations

# name, task, every (seconds). Operators change the intervals in the admin (django-celery-beat).
JOBS = [
    ("Payments: re-enqueue unprocessed webhooks", "payments.tasks.sweep_webhooks", 30),
    ("Payments: poll stuck payments and expire deposits", "payments.tasks.poll_stuck_payments", 60),
    ("Payments: retry due casino notifications", "payments.tasks.retry_due_notifications", 60),
]


def schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds in JOBS:
        every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": every})


def unschedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task__in=[task for _, task, _ in JOBS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
