"""Instrument fingerprints became keyed and versioned (wallets/fingerprints.py): upgrade the
copies compliance matches on — the instrument-use index and the shared-instrument alerts'
dedup keys — to the current key version, as `manage.py refingerprint_instruments` does after
a key rotation. Ledger entries keep theirs (append-only); `load_activity` upgrades on read."""

from django.db import migrations

from wallets import fingerprints

PREFIX = "instrument:"


def upgrade(apps, schema_editor):
    InstrumentUse = apps.get_model("compliance", "InstrumentUse")
    Alert = apps.get_model("compliance", "Alert")
    for old in set(InstrumentUse.objects.values_list("fingerprint", flat=True)):
        new = fingerprints.upgrade(old)
        if new != old:
            InstrumentUse.objects.filter(fingerprint=old).update(fingerprint=new)
    alerts = Alert.objects.filter(
        rule__kind="shared_instrument", dedup_key__startswith=PREFIX
    ).order_by("pk")
    for alert in alerts:
        old = alert.dedup_key.removeprefix(PREFIX)
        new = fingerprints.upgrade(old)
        taken = Alert.objects.filter(
            rule_id=alert.rule_id, player_id=alert.player_id, dedup_key=PREFIX + new
        ).exists()
        if new == old or taken:
            continue
        alert.dedup_key = PREFIX + new
        if alert.details.get("instrument") == old:
            alert.details = {**alert.details, "instrument": new}
        alert.save(update_fields=["dedup_key", "details"])


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0002_rules_roles_and_schedules"),
    ]

    # A keyed fingerprint cannot be turned back into the unkeyed one: backwards keeps it.
    operations = [migrations.RunPython(upgrade, migrations.RunPython.noop)]
