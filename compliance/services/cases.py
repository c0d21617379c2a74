"""Alerts and the cases they open, and what an officer does with a case: assign, investigate,
escalate, note, request documents, block withdrawals, freeze the player, record a SAR, close.

One open case per player: every alert joins the player's case that is not closed, so an
officer sees everything known about the player in one place.
"""

from datetime import date

from django.db import IntegrityError, transaction
from django.utils import timezone

from wallets import services as wallet_services
from wallets.models import Player

from ..errors import InvalidLimit, InvalidTransition
from ..models import (
    Alert,
    AmlRule,
    Case,
    CaseNote,
    DocumentRequest,
    KycDocument,
    SuspiciousActivityReport,
    WithdrawalBlock,
)
from .audit import apply_transition, audit, require_note, require_perm
from .risk import recompute_risk

Kind = AmlRule.Kind
DocType = KycDocument.Type


def _open_case(player: Player) -> Case:
    """The player's case that is not closed, created if needed, locked. Inside a transaction."""
    for _ in range(2):
        case = (
            Case.objects.select_for_update()
            .filter(player=player)
            .exclude(status=Case.Status.CLOSED)
            .first()
        )
        if case is not None:
            return case
        try:
            with transaction.atomic():
                case = Case.objects.create(player=player)
                audit(action="case_opened", player=player, case=case, subject=f"case:{case.pk}")
                return case
        except IntegrityError:
            # Another alert opened it first (one open case per player): join that one.
            continue
    raise RuntimeError("could not open a case")  # pragma: no cover


def raise_alert(
    *, rule: AmlRule, player: Player, dedup_key: str, details: dict, entry_ids=(), window=None
) -> Alert | None:
    """Record a rule hit and put it in the player's open case; None if it was already raised
    (same rule, player and key) or an alert of this rule is younger than `window`."""
    with transaction.atomic():
        if (
            window is not None
            and Alert.objects.filter(
                rule=rule, player=player, created_at__gte=timezone.now() - window
            ).exists()
        ):
            return None
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    rule=rule,
                    player=player,
                    score=rule.score,
                    dedup_key=dedup_key[:200],
                    details=details,
                )
        except IntegrityError:
            return None
        if entry_ids:
            Alert.entries.through.objects.bulk_create(
                [Alert.entries.through(alert=alert, journalentry_id=e) for e in set(entry_ids)]
            )
        case = _open_case(player)
        alert.case = case
        alert.save(update_fields=["case"])
        case.risk_score += alert.score
        case.save(update_fields=["risk_score", "updated_at"])
        audit(
            action="alert_raised",
            player=player,
            case=case,
            subject=f"alert:{alert.pk}",
            rule=rule.code,
            score=alert.score,
            details=details,
        )
    return alert


def raise_event_alert(*, kind: str, player: Player, dedup_key: str, details: dict):
    """An alert from a payment-time check or screening, under the enabled rule of `kind`."""
    rule = AmlRule.objects.filter(kind=kind, is_enabled=True).first()
    if rule is None:
        return None
    alert = raise_alert(rule=rule, player=player, dedup_key=dedup_key, details=details)
    if alert is not None:
        recompute_risk(player=player)
    return alert


def resolve_alert(*, alert: Alert, actor, confirm: bool, note: str) -> Alert:
    """Clear (false positive) or confirm an alert. A confirmed sanctions match freezes the
    player and blocks withdrawals for good; a cleared one lifts its withdrawal block."""
    require_perm(actor, "resolve_alert")
    note = require_note(note, "Resolving an alert")
    with transaction.atomic():
        alert = Alert.objects.select_for_update().select_related("rule", "player").get(pk=alert.pk)
        if alert.status != Alert.Status.OPEN:
            raise InvalidTransition(f"The alert is already {alert.status}.", status=alert.status)
        alert.status = Alert.Status.CONFIRMED if confirm else Alert.Status.CLEARED
        alert.resolved_by, alert.resolved_at, alert.resolution_note = actor, timezone.now(), note
        alert.save()
        audit(
            action="alert_confirmed" if confirm else "alert_cleared",
            actor=actor,
            player=alert.player,
            case=alert.case,
            subject=f"alert:{alert.pk}",
            reason=note,
            rule=alert.rule.code,
        )
        if confirm and alert.rule.kind == Kind.SANCTIONS_MATCH:
            WithdrawalBlock.objects.create(
                player=alert.player,
                case=alert.case,
                reason=f"Confirmed sanctions match (alert #{alert.pk}).",
                created_by=actor,
            )
            if alert.player.status == Player.Status.ACTIVE:
                wallet_services.freeze_player(
                    player=alert.player, actor=actor, reason=f"Confirmed sanctions match: {note}"
                )
    recompute_risk(player=alert.player)
    return alert


def _locked_case(case: Case) -> Case:
    return Case.objects.select_for_update().get(pk=case.pk)


def assign_case(*, case: Case, actor, assignee=None) -> Case:
    """Assign to `assignee`, or to the actor ("assign to me")."""
    require_perm(actor, "work_case")
    assignee = assignee or actor
    with transaction.atomic():
        case = _locked_case(case)
        if case.status == Case.Status.CLOSED:
            raise InvalidTransition("A closed case cannot be reassigned.", status=case.status)
        case.assigned_to = assignee
        case.save(update_fields=["assigned_to", "updated_at"])
        audit(
            action="case_assigned",
            actor=actor,
            player=case.player,
            case=case,
            subject=f"case:{case.pk}",
            assignee=assignee.get_username(),
        )
    return case


def start_investigation(*, case: Case, actor) -> Case:
    require_perm(actor, "work_case")
    with transaction.atomic():
        case = _locked_case(case)
        apply_transition(case, "start_investigation")
        if case.assigned_to_id is None:
            case.assigned_to = actor
        case.save()
        audit(
            action="case_investigating",
            actor=actor,
            player=case.player,
            case=case,
            subject=f"case:{case.pk}",
        )
    return case


def escalate_case(*, case: Case, actor, reason: str) -> Case:
    require_perm(actor, "work_case")
    reason = require_note(reason, "Escalating a case")
    with transaction.atomic():
        case = _locked_case(case)
        apply_transition(case, "escalate")
        case.save()
        CaseNote.objects.create(case=case, author=actor, text=f"Escalated: {reason}")
        audit(
            action="case_escalated",
            actor=actor,
            player=case.player,
            case=case,
            subject=f"case:{case.pk}",
            reason=reason,
        )
    return case


def close_case(*, case: Case, actor, outcome: str, note: str) -> Case:
    """Close with an outcome and a note. Open alerts of the case are cleared (false
    positive) or confirmed (risk confirmed, SAR filed) with it. `sar_filed` needs a SAR."""
    require_perm(actor, "close_case")
    note = require_note(note, "Closing a case")
    if outcome not in Case.Outcome.values:
        raise InvalidTransition(f"Unknown outcome {outcome!r}.", outcome=outcome)
    with transaction.atomic():
        case = _locked_case(case)
        if outcome == Case.Outcome.SAR_FILED and not case.sars.exists():
            raise InvalidTransition("Record the SAR before closing as sar_filed.")
        apply_transition(case, "close", outcome=outcome, actor=actor, note=note)
        case.save()
        CaseNote.objects.create(case=case, author=actor, text=f"Closed ({outcome}): {note}")
        alert_status = (
            Alert.Status.CLEARED
            if outcome == Case.Outcome.FALSE_POSITIVE
            else Alert.Status.CONFIRMED
        )
        case.alerts.filter(status=Alert.Status.OPEN).update(
            status=alert_status, resolved_by=actor, resolved_at=timezone.now(), resolution_note=note
        )
        audit(
            action="case_closed",
            actor=actor,
            player=case.player,
            case=case,
            subject=f"case:{case.pk}",
            reason=note,
            outcome=outcome,
        )
    recompute_risk(player=case.player)
    return case


def add_case_note(*, case: Case, actor, text: str) -> CaseNote:
    require_perm(actor, "work_case")
    text = require_note(text, "A note")
    with transaction.atomic():
        note = CaseNote.objects.create(case=case, author=actor, text=text)
        audit(
            action="case_note_added",
            actor=actor,
            player=case.player,
            case=case,
            subject=f"case_note:{note.pk}",
        )
    return note


def record_sar(
    *, case: Case, actor, reference: str, filed_on: date, narrative: str
) -> SuspiciousActivityReport:
    require_perm(actor, "file_sar")
    reference = require_note(reference, "A SAR reference")
    narrative = require_note(narrative, "A SAR")
    with transaction.atomic():
        case = _locked_case(case)
        if case.status == Case.Status.CLOSED:
            raise InvalidTransition("The case is closed.", status=case.status)
        sar = SuspiciousActivityReport.objects.create(
            case=case, reference=reference, filed_on=filed_on, narrative=narrative, filed_by=actor
        )
        audit(
            action="sar_recorded",
            actor=actor,
            player=case.player,
            case=case,
            subject=f"sar:{sar.pk}",
            reference=reference,
            filed_on=filed_on.isoformat(),
        )
    return sar


def freeze_player_for_case(*, case: Case, actor, reason: str) -> Player:
    """Freeze the player's wallet (deposits, bets, withdrawals stop) as a case action."""
    require_perm(actor, "work_case")
    reason = require_note(reason, "Freezing a player")
    with transaction.atomic():
        player = wallet_services.freeze_player(
            player=case.player, actor=actor, reason=f"Compliance case #{case.pk}: {reason}"
        )
        audit(
            action="player_frozen",
            actor=actor,
            player=player,
            case=case,
            subject=f"player:{player.pk}",
            reason=reason,
        )
    return player


def block_withdrawals(*, player: Player, actor, reason: str, case: Case | None = None):
    require_perm(actor, "work_case")
    reason = require_note(reason, "Blocking withdrawals")
    with transaction.atomic():
        block = WithdrawalBlock.objects.create(
            player=player, case=case, reason=reason, created_by=actor
        )
        audit(
            action="withdrawals_blocked",
            actor=actor,
            player=player,
            case=case,
            subject=f"withdrawal_block:{block.pk}",
            reason=reason,
        )
    return block


def lift_withdrawal_block(*, block: WithdrawalBlock, actor, reason: str) -> WithdrawalBlock:
    require_perm(actor, "work_case")
    reason = require_note(reason, "Lifting a withdrawal block")
    with transaction.atomic():
        block = WithdrawalBlock.objects.select_for_update().get(pk=block.pk)
        if block.lifted_at is not None:
            raise InvalidTransition("The block was already lifted.")
        block.lifted_at, block.lifted_by, block.lift_reason = timezone.now(), actor, reason
        block.save()
        audit(
            action="withdrawal_block_lifted",
            actor=actor,
            player=block.player,
            case=block.case,
            subject=f"withdrawal_block:{block.pk}",
            reason=reason,
        )
    return block


def request_documents(*, case: Case, actor, document_types: list[str], message: str = ""):
    require_perm(actor, "work_case")
    unknown = set(document_types) - set(DocType.values)
    if not document_types or unknown:
        raise InvalidLimit("Name one or more known document types.", unknown=sorted(unknown))
    with transaction.atomic():
        request = DocumentRequest.objects.create(
            player=case.player,
            case=case,
            document_types=list(document_types),
            message=message,
            requested_by=actor,
        )
        audit(
            action="documents_requested",
            actor=actor,
            player=case.player,
            case=case,
            subject=f"document_request:{request.pk}",
            document_types=list(document_types),
        )
    return request
