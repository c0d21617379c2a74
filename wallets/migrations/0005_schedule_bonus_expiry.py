from django.conf import settings
from django.db import migrations

TASK = "wallets.tasks.expire_bonuses"


def schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(
        every=settings.BONUS_EXPIRY_INTERVAL_SECONDS, period="seconds"
    )
    PeriodicTask.objects.get_or_create(
        name="Forfeit expired bonuses", defaults={"task": TASK, "interval": every}
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("wallets", "0004_bonus_gameprovider_gameround_gametransaction_and_more"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
