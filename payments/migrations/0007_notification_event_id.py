import uuid

from django.db import migrations, models


def give_each_an_event_id(apps, schema_editor):
    """One id per existing notification (a column default would give them all the same)."""
    Notification = apps.get_model("payments", "Notification")
    # Notifications already on their schedule stay where they are on it.
    Notification.objects.update(attempts_in_schedule=models.F("attempts"))
    for notification in Notification.objects.filter(event_id__isnull=True).only("pk", "payload"):
        event_id = uuid.uuid4()
        notification.event_id = event_id
        notification.payload = {"event_id": str(event_id), **notification.payload}
        notification.save(update_fields=["event_id", "payload"])


class Migration(migrations.Migration):
    dependencies = [("payments", "0006_provider_event_invariants")]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="attempts_in_schedule",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="notification",
            name="event_id",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(give_each_an_event_id, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="notification",
            name="event_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
