"""KYC: the player's verification requests and documents, the officer's review, the level
they earn, and the daily downgrade when a document the level rests on expires."""

from datetime import date

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_fsm import can_proceed

from wallets.models import Player

from ..errors import DocumentsMissing, InvalidLimit, InvalidTransition
from ..models import (
    DocumentRequest,
    KycDocument,
    KycLevel,
    KycLevelChange,
    KycProfile,
    VerificationRequest,
)
from ..selectors import kyc_level
from .audit import apply_transition, audit, require_note, require_perm
from .risk import recompute_risk
from .screening import screen_player

DocType = KycDocument.Type


# Documents each level needs, on top of the lower levels' (basic is a database check).
LEVEL_DOCUMENTS = {
    KycLevel.BASIC: (),
    KycLevel.VERIFIED: (DocType.ID_DOCUMENT, DocType.PROOF_OF_ADDRESS),
    KycLevel.ENHANCED: (DocType.ID_DOCUMENT, DocType.PROOF_OF_ADDRESS, DocType.SOURCE_OF_FUNDS),
}


def _profile(player: Player, *, lock: bool = False) -> KycProfile:
    KycProfile.objects.get_or_create(player=player)
    queryset = KycProfile.objects.select_for_update() if lock else KycProfile.objects
    return queryset.get(player=player)


def _set_level(*, player, level: str, actor, reason: str) -> KycProfile:
    """Inside the caller's transaction."""
    profile = _profile(player, lock=True)
    if profile.level == level:
        return profile
    KycLevelChange.objects.create(
        player=player, from_level=profile.level, to_level=level, reason=reason, actor=actor
    )
    audit(
        action="kyc_level_changed",
        actor=actor,
        player=player,
        subject=f"player:{player.pk}",
        reason=reason,
        from_level=profile.level,
        to_level=level,
    )
    profile.level = level
    profile.save(update_fields=["level", "updated_at"])
    return profile


def set_kyc_level(*, player: Player, level: str, actor, reason: str) -> KycProfile:
    """An officer sets the level by hand (e.g. after a check outside the platform)."""
    require_perm(actor, "change_kyc_level")
    reason = require_note(reason, "A KYC level change")
    if level not in KycLevel.values:
        raise InvalidLimit(f"Unknown KYC level {level!r}.", level=level)
    with transaction.atomic():
        profile = _set_level(player=player, level=level, actor=actor, reason=reason)
    recompute_risk(player=player)
    return profile


def submit_verification(*, player: Player, target_level: str, documents=()) -> VerificationRequest:
    """The player asks for `target_level`, uploading `documents`: (type, file, expires_on)."""
    if target_level not in LEVEL_DOCUMENTS:
        raise InvalidLimit(f"Cannot request KYC level {target_level!r}.", level=target_level)
    with transaction.atomic():
        request = VerificationRequest.objects.create(player=player, target_level=target_level)
        for document_type, upload, expires_on in documents:
            KycDocument.objects.create(
                player=player,
                request=request,
                document_type=document_type,
                file=upload,
                expires_on=expires_on,
            )
        audit(
            action="verification_submitted",
            player=player,
            subject=f"verification:{request.pk}",
            target_level=target_level,
            documents=[d[0] for d in documents],
        )
        _fulfil_document_requests(player=player, uploaded={d[0] for d in documents})
    return request


def _fulfil_document_requests(*, player: Player, uploaded: set[str]) -> None:
    """An officer's request for documents is fulfilled once every type asked for arrived."""
    for asked in DocumentRequest.objects.filter(player=player, fulfilled_at__isnull=True):
        if set(asked.document_types) <= uploaded:
            asked.fulfilled_at = timezone.now()
            asked.save(update_fields=["fulfilled_at"])


def _locked_request(request: VerificationRequest) -> VerificationRequest:
    return VerificationRequest.objects.select_for_update().get(pk=request.pk)


def valid_document_types(player: Player, today: date | None = None) -> set[str]:
    """Document types the player has on approved or pending requests that have not expired."""
    today = today or timezone.localdate()
    return set(
        KycDocument.objects.filter(player=player)
        .exclude(
            request__status__in=[
                VerificationRequest.Status.REJECTED,
                VerificationRequest.Status.RESUBMISSION_REQUESTED,
            ]
        )
        .filter(Q(expires_on__isnull=True) | Q(expires_on__gte=today))
        .values_list("document_type", flat=True)
    )


def review_verification(
    *, request: VerificationRequest, reviewer, decision: str, reason: str = ""
) -> VerificationRequest:
    """start_review, approve, reject or request_resubmission. Approving checks that every
    document the level needs is there and unexpired, raises the player's level and
    screens the player against the sanctions list."""
    require_perm(reviewer, "review_verification")
    if decision not in ("start_review", "approve", "reject", "request_resubmission"):
        raise InvalidTransition(f"Unknown review decision {decision!r}.")
    if decision != "start_review":
        reason = require_note(reason, "A verification decision")
    with transaction.atomic():
        request = _locked_request(request)
        player = request.player
        if not can_proceed(getattr(request, decision)):
            raise InvalidTransition(
                f"Cannot {decision.replace('_', ' ')} a {request.status} request.",
                status=request.status,
            )
        if decision == "approve":
            needed = set(LEVEL_DOCUMENTS[request.target_level])
            missing = needed - valid_document_types(player)
            if missing:
                raise DocumentsMissing(
                    f"Missing or expired: {', '.join(sorted(missing))}.", missing=sorted(missing)
                )
        kwargs = {"reviewer": reviewer}
        if decision != "start_review":
            kwargs["reason"] = reason
        apply_transition(request, decision, **kwargs)
        request.save()
        audit(
            action=f"verification_{decision}",
            actor=reviewer,
            player=player,
            subject=f"verification:{request.pk}",
            reason=reason,
            target_level=request.target_level,
        )
        current = kyc_level(player)
        if decision == "approve" and KycLevel.rank(request.target_level) > KycLevel.rank(current):
            _set_level(
                player=player,
                level=request.target_level,
                actor=reviewer,
                reason=f"Verification #{request.pk} approved: {reason}",
            )
    if decision == "approve":
        screen_player(player=player)
        recompute_risk(player=player)
    return request


def resubmit_verification(*, request: VerificationRequest, documents=()) -> VerificationRequest:
    with transaction.atomic():
        request = _locked_request(request)
        apply_transition(request, "resubmit")
        request.save()
        for document_type, upload, expires_on in documents:
            KycDocument.objects.create(
                player=request.player,
                request=request,
                document_type=document_type,
                file=upload,
                expires_on=expires_on,
            )
        audit(
            action="verification_resubmitted",
            player=request.player,
            subject=f"verification:{request.pk}",
        )
        _fulfil_document_requests(player=request.player, uploaded={d[0] for d in documents})
    return request


def expire_kyc_documents(*, today: date | None = None) -> int:
    """Downgrade every player whose level rests on a document that has expired and has not
    been replaced; return how many were downgraded. Run daily by beat."""
    today = today or timezone.localdate()
    downgraded = 0
    expired_players = (
        KycDocument.objects.filter(expires_on__lt=today)
        .values_list("player_id", flat=True)
        .distinct()
    )
    profiles = KycProfile.objects.filter(
        player_id__in=expired_players, level__in=[KycLevel.VERIFIED, KycLevel.ENHANCED]
    ).select_related("player")
    for profile in profiles:
        valid = valid_document_types(profile.player, today)
        level = profile.level
        while level in (KycLevel.VERIFIED, KycLevel.ENHANCED) and not (
            set(LEVEL_DOCUMENTS[level]) <= valid
        ):
            level = KycLevel.values[KycLevel.rank(level) - 1]
        if level != profile.level:
            with transaction.atomic():
                _set_level(
                    player=profile.player,
                    level=level,
                    actor=None,
                    reason=f"Document expired; valid documents: {sorted(valid) or 'none'}.",
                )
            recompute_risk(player=profile.player)
            downgraded += 1
    return downgraded
