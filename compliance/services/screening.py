"""Sanctions screening as actions: store a new OFAC list, screen a player against the stored
list and raise a sanctions alert per hit, screen everyone again after a list change.

Reading OFAC's files and matching names is `compliance.screening`, which writes nothing.
A hit raises a sanctions alert; the alert blocks withdrawals until an officer clears or
confirms it (`resolve_alert`).
"""

from pathlib import Path

from django.db import transaction
from django.utils import timezone

from wallets.models import Player

from .. import screening
from ..models import AmlRule, SanctionsEntity, SanctionsImport, SanctionsName
from ..screening import SOURCE, normalize_name
from ..signals import sanctions_list_imported
from .audit import audit
from .cases import raise_event_alert


def import_sdn(
    *, directory: Path | None = None, actor=None, force: bool = False, rescreen: bool = True
) -> SanctionsImport | None:
    """Replace the stored SDN list with the files in `directory`; return the import, or None
    when the files are the ones already imported (unless `force`). A changed list sends
    every player to be screened again once the import commits (unless `rescreen` is False,
    e.g. to schedule the re-screen of a large player base for a quiet hour)."""
    directory = Path(directory or screening.data_dir())
    sha256 = screening.list_digest(directory)
    latest = SanctionsImport.objects.filter(source=SOURCE).first()
    if latest is not None and latest.sha256 == sha256 and not force:
        return None
    listed = screening.read_sdn(directory)
    with transaction.atomic():
        SanctionsName.objects.filter(entity__source=SOURCE).delete()
        SanctionsEntity.objects.filter(source=SOURCE).delete()
        SanctionsEntity.objects.bulk_create(listed.entities, batch_size=2000)
        ids = dict(SanctionsEntity.objects.filter(source=SOURCE).values_list("source_id", "pk"))
        rows = [
            SanctionsName(
                entity_id=ids[ent], name=name[:400], normalized=normalize_name(name)[:400], kind=k
            )
            for ent, name, k in listed.names
            if ent in ids and normalize_name(name)
        ]
        SanctionsName.objects.bulk_create(rows, batch_size=5000)
        record = SanctionsImport.objects.create(
            source=SOURCE,
            sha256=sha256,
            entity_count=len(listed.entities),
            name_count=len(rows),
            actor=actor,
        )
        audit(
            action="sanctions_list_imported",
            actor=actor,
            subject=f"sanctions_import:{record.pk}",
            entities=len(listed.entities),
            names=len(rows),
            sha256=sha256,
        )
        transaction.on_commit(screening.invalidate_index)
        sanctions_list_imported.send(
            sender=SanctionsImport, sanctions_import=record, rescreen=rescreen
        )
    return record


def screen_player(*, player: Player) -> list:
    """Screen one player; raise a sanctions alert per listed person matched (once per
    person and name: a cleared false positive is not raised again for the same name)."""
    if not player.full_name:
        return []
    matches = screening.match_name(
        player.full_name, date_of_birth=player.date_of_birth, country=player.country
    )
    alerts = []
    for match in matches:
        alert = raise_event_alert(
            kind=AmlRule.Kind.SANCTIONS_MATCH,
            player=player,
            dedup_key=f"{SOURCE}:{match.source_id}:{normalize_name(player.full_name)}",
            details={
                "list": SOURCE,
                "listed_id": match.source_id,
                "listed_name": match.listed_name,
                "matched_name": match.matched_name,
                "player_name": player.full_name,
                "score": match.score,
                "name_score": match.name_score,
                "qualifiers": list(match.qualifiers),
                "screened_at": timezone.now().isoformat(timespec="seconds"),
            },
        )
        if alert is not None:
            alerts.append(alert)
    return alerts


def rescreen_all_players(*, chunk_size: int = 1000) -> int:
    """Screen every player that is not closed (after a list change); return how many."""
    screened = 0
    queryset = Player.objects.exclude(status=Player.Status.CLOSED).order_by("pk")
    for player in queryset.iterator(chunk_size=chunk_size):
        screen_player(player=player)
        screened += 1
    return screened
