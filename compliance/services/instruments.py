"""Keeping compliance's copies of instrument fingerprints on the current key version.

Fingerprints are keyed and versioned (wallets/fingerprints.py). After a key rotation the
ledger's append-only entries keep the version they were written with (compliance upgrades them
as it reads, `selectors.load_activity`); the rows compliance owns and matches on —
`InstrumentUse` (who used which instrument) and the shared-instrument alerts (their dedup key
names the instrument) — are rewritten here, so a player who used a card before the rotation
and one who used it after are still linked, and a known sharing is not alerted twice.
"""

from django.db import transaction

from wallets import fingerprints

from ..models import Alert, AmlRule, InstrumentUse
from .audit import audit

_ALERT_PREFIX = "instrument:"


def stale_instrument_fingerprints() -> dict[str, int]:
    """How many rows compliance owns still carry an older key version (0 and 0: current)."""
    uses = sum(
        1
        for value in InstrumentUse.objects.values_list("fingerprint", flat=True).distinct()
        if not fingerprints.is_current(value)
    )
    alerts = sum(
        1
        for key in _instrument_alerts().values_list("dedup_key", flat=True)
        if not fingerprints.is_current(key.removeprefix(_ALERT_PREFIX))
    )
    return {"instrument_uses": uses, "alerts": alerts}


def rekey_instrument_fingerprints(*, actor=None) -> dict[str, int]:
    """Upgrade every stored fingerprint compliance owns to the current key version. Idempotent;
    returns how many distinct instrument-use fingerprints and alerts changed, and how many
    alerts were left because an alert with the upgraded key already exists (raised between
    the rotation and this run: the officer closes the duplicate)."""
    changed = {"instrument_uses": 0, "alerts": 0, "alerts_kept_as_duplicates": 0}
    with transaction.atomic():
        for old in InstrumentUse.objects.values_list("fingerprint", flat=True).distinct():
            new = fingerprints.upgrade(old)
            if new != old:
                InstrumentUse.objects.filter(fingerprint=old).update(fingerprint=new)
                changed["instrument_uses"] += 1
        for alert in _instrument_alerts().select_for_update().order_by("pk"):
            old = alert.dedup_key.removeprefix(_ALERT_PREFIX)
            new = fingerprints.upgrade(old)
            if new == old:
                continue
            taken = Alert.objects.filter(
                rule_id=alert.rule_id, player_id=alert.player_id, dedup_key=_ALERT_PREFIX + new
            ).exists()
            if taken:
                changed["alerts_kept_as_duplicates"] += 1
                continue
            alert.dedup_key = _ALERT_PREFIX + new
            if alert.details.get("instrument") == old:
                alert.details = {**alert.details, "instrument": new}
            alert.save(update_fields=["dedup_key", "details"])
            changed["alerts"] += 1
        if changed["instrument_uses"] or changed["alerts"]:
            audit(
                action="instrument_fingerprints_rekeyed",
                actor=actor,
                subject=f"fingerprint key v{fingerprints.current_version()}",
                **changed,
            )
    return changed


def _instrument_alerts():
    return Alert.objects.filter(
        rule__kind=AmlRule.Kind.SHARED_INSTRUMENT, dedup_key__startswith=_ALERT_PREFIX
    )
