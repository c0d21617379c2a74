"""Every compliance write, and the decisions payments and the game wallet ask for.

Contract with payments (keep the signatures):
- `assess_deposit(*, player, amount, currency, method, ip=None) -> Decision`
- `assess_withdrawal(*, player, amount, currency, method, ip=None) -> Decision`
A Decision is allow, refuse (with stable reason codes the frontend can show, the first one
being the main reason) or review (the withdrawal goes to in_review with the reasons attached).
Each decision is stored as a `PaymentDecision` with its inputs and reasons.

Bets: `check_bet` is connected to `wallets.signals.bet_requested` and raises `SelfExcluded` /
`TimedOut`.

Tipping off: AML law forbids telling a player they are under suspicion, so a withdrawal
blocked by a case or a sanctions hit is refused with the neutral `withdrawals_blocked`; the
stored decision keeps the real cause.
"""

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django_fsm import can_proceed

from wallets import services as wallet_services
from wallets.models import Account, JournalEntry, Player, Posting

from . import rules
from .errors import (
    DocumentsMissing,
    InvalidLimit,
    InvalidTransition,
    NoteRequired,
    NotPermitted,
    SelfExcluded,
    TimedOut,
)
from .models import (
    Alert,
    AmlRule,
    AuditEvent,
    Case,
    CaseNote,
    DepositLimit,
    DocumentRequest,
    KycDocument,
    KycLevel,
    KycLevelChange,
    KycProfile,
    PaymentDecision,
    RiskAssessment,
    SelfExclusion,
    SuspiciousActivityReport,
    VerificationRequest,
    WithdrawalBlock,
)

logger = logging.getLogger(__name__)

Kind = AmlRule.Kind
DocType = KycDocument.Type

# Documents each level needs, on top of the lower levels' (basic is a database check).
LEVEL_DOCUMENTS = {
    KycLevel.BASIC: (),
    KycLevel.VERIFIED: (DocType.ID_DOCUMENT, DocType.PROOF_OF_ADDRESS),
    KycLevel.ENHANCED: (DocType.ID_DOCUMENT, DocType.PROOF_OF_ADDRESS, DocType.SOURCE_OF_FUNDS),
}


@dataclass(frozen=True)
class Decision:
    ALLOW = "allow"
    REFUSE = "refuse"
    REVIEW = "review"

    outcome: str
    reasons: list[str] = field(default_factory=list)

    @property
    def is_allowed(self) -> bool:
        return self.outcome == self.ALLOW


# --- audit ---------------------------------------------------------------------------------


def audit(*, action: str, actor=None, player=None, case=None, subject="", reason="", **details):
    """Append one row to the compliance audit trail (inside the caller's transaction)."""
    return AuditEvent.objects.create(
        action=action,
        actor=actor if getattr(actor, "pk", None) else None,
        player=player,
        case=case,
        subject=subject,
        reason=reason,
        details=details,
    )


def _require_perm(actor, perm: str) -> None:
    """Roles are enforced here, not only in the admin: every caller goes through services."""
    if actor is None or not actor.is_authenticated or not actor.has_perm(f"compliance.{perm}"):
        raise NotPermitted(f"Your role does not allow this ({perm}).", permission=perm)


def _require_note(text: str, what: str = "This action") -> str:
    if not text or not text.strip():
        raise NoteRequired(f"{what} needs a reason or note.")
    return text.strip()


# --- reads used by decisions -----------------------------------------------------------------


def kyc_level(player: Player) -> str:
    level = KycProfile.objects.filter(player=player).values_list("level", flat=True).first()
    return level or KycLevel.NONE


def minimum_age(country: str) -> int:
    return settings.COMPLIANCE_MINIMUM_AGE_BY_COUNTRY.get(
        (country or "").upper(), settings.COMPLIANCE_DEFAULT_MINIMUM_AGE
    )


def age_on(date_of_birth: date, today: date) -> int:
    had_birthday = (today.month, today.day) >= (date_of_birth.month, date_of_birth.day)
    return today.year - date_of_birth.year - (0 if had_birthday else 1)


def is_blocked_country(country: str) -> bool:
    country = (country or "").upper()
    allowed = [c.upper() for c in settings.COMPLIANCE_ALLOWED_COUNTRIES]
    blocked = [c.upper() for c in settings.COMPLIANCE_BLOCKED_COUNTRIES]
    return country in blocked or bool(allowed and country not in allowed)


@lru_cache(maxsize=1)
def _geoip():
    from geoip2fast import GeoIP2Fast

    return GeoIP2Fast()


def ip_country(ip: str | None) -> str | None:
    """The IP's country from the offline database shipped with geoip2fast; None when the
    address is private, reserved, invalid or unknown."""
    if not ip:
        return None
    result = _geoip().lookup(ip)
    code = (result.country_code or "").upper()
    if result.is_private or len(code) != 2 or not code.isalpha():
        return None
    return code


def active_self_exclusion(player: Player, now=None) -> SelfExclusion | None:
    """The exclusion in force, the self-exclusion before a time-out if both are."""
    now = now or timezone.now()
    return (
        SelfExclusion.objects.filter(player=player, starts_at__lte=now)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .order_by("kind")  # "self_exclusion" sorts before "timeout": the stronger one first
        .first()
    )


def deposited(player: Player, *, currency: str | None = None, since=None) -> dict[str, Decimal]:
    """Deposits credited to the player's cash per currency (optionally since `since`)."""
    cash = Account.objects.filter(owner=player, kind=Account.Kind.PLAYER_CASH)
    if currency:
        cash = cash.filter(currency_id=currency)
    accounts = dict(cash.values_list("pk", "currency_id"))
    # Filtering postings by account id (not by a join on the owner) lets PostgreSQL walk the
    # (account, id) index instead of scanning every posting.
    postings = Posting.objects.filter(
        account_id__in=list(accounts), entry__kind=JournalEntry.Kind.DEPOSIT
    )
    if since is not None:
        postings = postings.filter(entry__created_at__gte=since)
    rows = postings.values("account_id").annotate(total=Sum("amount"))
    return {accounts[r["account_id"]]: r["total"] for r in rows}


def deposited_eur(player: Player, since=None) -> Decimal:
    return sum(
        (rules.to_eur(total, cur) for cur, total in deposited(player, since=since).items()),
        Decimal(0),
    )


def withdrawals_blocked_by(player: Player) -> list[str]:
    """Why the player's withdrawals are blocked (internal reasons), empty if they are not."""
    causes = []
    if WithdrawalBlock.objects.filter(player=player, lifted_at__isnull=True).exists():
        causes.append("withdrawal_block")
    if Alert.objects.filter(
        player=player,
        rule__kind=Kind.SANCTIONS_MATCH,
        status__in=[Alert.Status.OPEN, Alert.Status.CONFIRMED],
    ).exists():
        causes.append("sanctions_match")
    return causes


def risk_level(player: Player) -> str:
    level = RiskAssessment.objects.filter(player=player).values_list("level", flat=True).first()
    return level or RiskAssessment.Level.LOW


# --- payment-time decisions ----------------------------------------------------------------


@dataclass
class _Verdict:
    refusals: list[str] = field(default_factory=list)
    reviews: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def decision(self) -> Decision:
        if self.refusals:
            return Decision(Decision.REFUSE, list(dict.fromkeys(self.refusals)))
        if self.reviews:
            return Decision(Decision.REVIEW, list(dict.fromkeys(self.reviews)))
        return Decision(Decision.ALLOW)


def _record(*, player, action, decision: Decision, verdict: _Verdict, inputs: dict):
    PaymentDecision.objects.create(
        player=player,
        action=action,
        outcome=decision.outcome,
        reasons=decision.reasons + [f"note:{n}" for n in verdict.notes],
        inputs=inputs,
    )


def _location_checks(*, player, ip, verdict: _Verdict, on_mismatch: str, action: str):
    country = (player.country or "").upper()
    seen_from = ip_country(ip)
    if is_blocked_country(country) or (seen_from and is_blocked_country(seen_from)):
        # Money in from a blocked jurisdiction is refused; money out is for an officer.
        target = verdict.refusals if on_mismatch == "alert" else verdict.reviews
        target.append("blocked_jurisdiction")
    if seen_from and country and seen_from != country:
        raise_event_alert(
            kind=Kind.LOCATION_MISMATCH,
            player=player,
            dedup_key=f"{country}->{seen_from}",
            details={"residence": country, "ip_country": seen_from, "ip": ip, "action": action},
        )
        if on_mismatch == "review":
            verdict.reviews.append("location_mismatch")
        else:
            verdict.notes.append("location_mismatch_alerted")
    return seen_from


def _age_check(player, verdict: _Verdict, *, refuse: bool):
    target = verdict.refusals if refuse else verdict.reviews
    if player.date_of_birth is None:
        target.append("date_of_birth_required")
    elif age_on(player.date_of_birth, timezone.localdate()) < minimum_age(player.country):
        target.append("under_age")


@transaction.atomic
def assess_deposit(
    *, player, amount: Decimal, currency: str, method: str, ip: str | None = None
) -> Decision:
    """Decide whether the player may deposit `amount`: allow or refuse (never review).

    Refused: self-excluded / timed out, KYC level none, no or under-age date of birth,
    blocked residence or IP country, basic level over its lifetime deposit cap, a high-value
    deposit below level enhanced, or over one of the player's own deposit limits. An IP
    country that differs from the residence raises an alert but does not refuse.
    """
    amount = wallet_services.validate_amount(amount, currency)
    now = timezone.now()
    verdict = _Verdict()
    exclusion = active_self_exclusion(player, now)
    if exclusion is not None:
        verdict.refusals.append(
            "timed_out" if exclusion.kind == SelfExclusion.Kind.TIMEOUT else "self_excluded"
        )
    level = kyc_level(player)
    if level == KycLevel.NONE:
        verdict.refusals.append("kyc_required")
    _age_check(player, verdict, refuse=True)
    seen_from = _location_checks(
        player=player, ip=ip, verdict=verdict, on_mismatch="alert", action="deposit"
    )
    amount_eur = rules.to_eur(amount, currency)
    if level == KycLevel.BASIC:
        cap = Decimal(settings.COMPLIANCE_BASIC_DEPOSIT_LIMIT_EUR)
        if deposited_eur(player) + amount_eur > cap:
            verdict.refusals.append("kyc_verification_required")
    if amount_eur >= Decimal(settings.COMPLIANCE_HIGH_VALUE_THRESHOLD_EUR) and (
        KycLevel.rank(level) < KycLevel.rank(KycLevel.ENHANCED)
    ):
        verdict.refusals.append("enhanced_due_diligence_required")
    breached = _breached_limits(player=player, currency=currency, amount=amount, now=now)
    if breached:
        verdict.refusals.append("deposit_limit_exceeded")
        verdict.notes.extend(f"limit_{period}" for period in breached)
    decision = verdict.decision()
    _record(
        player=player,
        action=PaymentDecision.Action.DEPOSIT,
        decision=decision,
        verdict=verdict,
        inputs={
            "amount": str(amount),
            "currency": currency,
            "method": method,
            "ip": ip,
            "ip_country": seen_from,
            "kyc_level": level,
            "country": player.country,
        },
    )
    return decision


def _breached_limits(*, player, currency, amount, now) -> list[str]:
    breached = []
    for limit in DepositLimit.objects.filter(player=player, currency_id=currency):
        cap = limit.effective_amount(now)
        if cap is None:
            continue
        since = now - timedelta(days=DepositLimit.WINDOW_DAYS[limit.period])
        already = deposited(player, currency=currency, since=since).get(currency, Decimal(0))
        if already + amount > cap:
            breached.append(limit.period)
    return breached


@transaction.atomic
def assess_withdrawal(
    *, player, amount: Decimal, currency: str, method: str, ip: str | None = None
) -> Decision:
    """Decide whether the player may withdraw `amount`: allow, refuse or review.

    Self-exclusion never stops a withdrawal: the player takes their balance out.
    Refused: KYC below verified, an active withdrawal block or sanctions hit (neutral code),
    high risk or a high-value amount without level enhanced. Review: under age or no date of
    birth, blocked jurisdiction, IP country mismatch, an open case being worked, or the
    minimal-play pattern (deposit, barely play, withdraw).
    """
    amount = wallet_services.validate_amount(amount, currency)
    verdict = _Verdict()
    level = kyc_level(player)
    if KycLevel.rank(level) < KycLevel.rank(KycLevel.VERIFIED):
        verdict.refusals.append("kyc_verification_required")
    blocked_by = withdrawals_blocked_by(player)
    if blocked_by:
        verdict.refusals.append("withdrawals_blocked")
        verdict.notes.extend(blocked_by)
    below_enhanced = KycLevel.rank(level) < KycLevel.rank(KycLevel.ENHANCED)
    risk = risk_level(player)
    amount_eur = rules.to_eur(amount, currency)
    if below_enhanced and (
        risk == RiskAssessment.Level.HIGH
        or amount_eur >= Decimal(settings.COMPLIANCE_HIGH_VALUE_THRESHOLD_EUR)
    ):
        verdict.refusals.append("enhanced_due_diligence_required")
    _age_check(player, verdict, refuse=False)
    seen_from = _location_checks(
        player=player, ip=ip, verdict=verdict, on_mismatch="review", action="withdrawal"
    )
    if Case.objects.filter(
        player=player, status__in=[Case.Status.INVESTIGATING, Case.Status.ESCALATED]
    ).exists():
        verdict.reviews.append("compliance_review")
        verdict.notes.append("open_case")
    if _looks_like_minimal_play(player=player, amount=amount, currency=currency):
        verdict.reviews.append("compliance_review")
        verdict.notes.append("minimal_play")
    decision = verdict.decision()
    _record(
        player=player,
        action=PaymentDecision.Action.WITHDRAWAL,
        decision=decision,
        verdict=verdict,
        inputs={
            "amount": str(amount),
            "currency": currency,
            "method": method,
            "ip": ip,
            "ip_country": seen_from,
            "kyc_level": level,
            "risk_level": risk,
            "country": player.country,
        },
    )
    return decision


def _looks_like_minimal_play(*, player, amount, currency) -> bool:
    """Run the minimal-play rule as if this withdrawal were already requested."""
    rule = AmlRule.objects.filter(kind=Kind.MINIMAL_PLAY, is_enabled=True).first()
    if rule is None:
        return False
    from .monitoring import load_activity

    now = timezone.now()
    params = rules.clean_parameters(rule.kind, rule.parameters)
    activity = load_activity([player.pk], now=now, span=timedelta(days=params["lookback_days"]))
    player_activity = activity.get(player.pk) or rules.Activity(player.pk, "", now, [])
    player_activity.movements.append(
        rules.Movement(entry_id=0, kind=rules.WITHDRAWAL, at=now, currency=currency, amount=amount)
    )
    return bool(rules.minimal_play(params, player_activity, now))


def check_bet(*, player, currency: str, amount) -> None:
    """Refuse a bet from a self-excluded or timed-out player (nothing is written by wallets).

    Only refusals are stored: recording every allowed bet would add a write to the hottest
    path in the platform for no regulatory need.
    """
    exclusion = active_self_exclusion(player)
    if exclusion is None:
        return
    error = TimedOut if exclusion.kind == SelfExclusion.Kind.TIMEOUT else SelfExcluded
    PaymentDecision.objects.create(
        player=player,
        action=PaymentDecision.Action.BET,
        outcome=PaymentDecision.Outcome.REFUSE,
        reasons=[error.code],
        inputs={"amount": str(amount), "currency": currency},
    )
    raise error(ends_at=exclusion.ends_at.isoformat() if exclusion.ends_at else None)


# --- KYC -----------------------------------------------------------------------------------


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
    _require_perm(actor, "change_kyc_level")
    reason = _require_note(reason, "A KYC level change")
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


def _transition(obj, name: str, **kwargs):
    method = getattr(obj, name)
    if not can_proceed(method):
        raise InvalidTransition(
            f"Cannot {name.replace('_', ' ')} from {obj.status}.", status=obj.status
        )
    method(**kwargs)


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
    _require_perm(reviewer, "review_verification")
    if decision not in ("start_review", "approve", "reject", "request_resubmission"):
        raise InvalidTransition(f"Unknown review decision {decision!r}.")
    if decision != "start_review":
        reason = _require_note(reason, "A verification decision")
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
        _transition(request, decision, **kwargs)
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
        from .screening import screen_player

        screen_player(player=player)
        recompute_risk(player=player)
    return request


def resubmit_verification(*, request: VerificationRequest, documents=()) -> VerificationRequest:
    with transaction.atomic():
        request = _locked_request(request)
        _transition(request, "resubmit")
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


# --- responsible gambling ------------------------------------------------------------------


def set_deposit_limit(
    *, player: Player, currency: str, period: str, amount, actor=None, now=None
) -> DepositLimit:
    """Set (amount) or remove (None) the player's deposit limit for `period` in `currency`.

    A first limit or a lower one applies at once; a higher one or a removal waits for the
    cooling-off period, and until then the current limit stays in force.
    """
    if period not in DepositLimit.Period.values:
        raise InvalidLimit(f"Unknown period {period!r}.", period=period)
    if amount is not None:
        amount = wallet_services.validate_amount(amount, currency)
    else:
        wallet_services.currency_exponent(currency)
    now = now or timezone.now()
    cooling_off = timedelta(hours=settings.COMPLIANCE_LIMIT_INCREASE_COOLING_OFF_HOURS)
    with transaction.atomic():
        DepositLimit.objects.get_or_create(player=player, currency_id=currency, period=period)
        limit = DepositLimit.objects.select_for_update().get(
            player=player, currency_id=currency, period=period
        )
        current = limit.effective_amount(now)
        applies_now = amount is not None and (current is None or amount <= current)
        if applies_now:
            limit.amount = amount
            limit.pending_amount, limit.pending_removal, limit.pending_from = None, False, None
        else:
            limit.amount = current
            limit.pending_amount = amount
            limit.pending_removal = amount is None
            limit.pending_from = now + cooling_off
        limit.save()
        audit(
            action="deposit_limit_set",
            actor=actor,
            player=player,
            subject=f"deposit_limit:{limit.pk}",
            currency=currency,
            period=period,
            requested=str(amount) if amount is not None else None,
            in_force=str(limit.amount) if limit.amount is not None else None,
            pending_from=limit.pending_from.isoformat() if limit.pending_from else None,
        )
    return limit


def self_exclude(
    *,
    player: Player,
    kind: str,
    days: int | None = None,
    permanent: bool = False,
    reason: str = "",
    actor=None,
) -> SelfExclusion:
    """Start a time-out (1-42 days) or a self-exclusion (at least 180 days, or permanent).

    Effective at once and never shortened: a new, shorter one does not end a longer one,
    because `active_self_exclusion` reads every row.
    """
    if kind == SelfExclusion.Kind.TIMEOUT:
        if permanent or days is None or not 1 <= days <= 42:
            raise InvalidLimit("A time-out lasts 1 to 42 days.", days=days)
    elif kind == SelfExclusion.Kind.SELF_EXCLUSION:
        if not permanent and (days is None or days < 180):
            raise InvalidLimit("A self-exclusion lasts at least 180 days or is permanent.")
    else:
        raise InvalidLimit(f"Unknown exclusion kind {kind!r}.", kind=kind)
    now = timezone.now()
    with transaction.atomic():
        exclusion = SelfExclusion.objects.create(
            player=player,
            kind=kind,
            starts_at=now,
            ends_at=None if permanent else now + timedelta(days=days),
            reason=reason,
        )
        audit(
            action="self_excluded",
            actor=actor,
            player=player,
            subject=f"self_exclusion:{exclusion.pk}",
            reason=reason,
            kind=kind,
            ends_at=exclusion.ends_at.isoformat() if exclusion.ends_at else None,
        )
    return exclusion


# --- alerts and cases ----------------------------------------------------------------------


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


def _locked_case(case: Case) -> Case:
    return Case.objects.select_for_update().get(pk=case.pk)


def assign_case(*, case: Case, actor, assignee=None) -> Case:
    """Assign to `assignee`, or to the actor ("assign to me")."""
    _require_perm(actor, "work_case")
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
    _require_perm(actor, "work_case")
    with transaction.atomic():
        case = _locked_case(case)
        _transition(case, "start_investigation")
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
    _require_perm(actor, "work_case")
    reason = _require_note(reason, "Escalating a case")
    with transaction.atomic():
        case = _locked_case(case)
        _transition(case, "escalate")
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
    _require_perm(actor, "close_case")
    note = _require_note(note, "Closing a case")
    if outcome not in Case.Outcome.values:
        raise InvalidTransition(f"Unknown outcome {outcome!r}.", outcome=outcome)
    with transaction.atomic():
        case = _locked_case(case)
        if outcome == Case.Outcome.SAR_FILED and not case.sars.exists():
            raise InvalidTransition("Record the SAR before closing as sar_filed.")
        _transition(case, "close", outcome=outcome, actor=actor, note=note)
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
    _require_perm(actor, "work_case")
    text = _require_note(text, "A note")
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
    _require_perm(actor, "file_sar")
    reference = _require_note(reference, "A SAR reference")
    narrative = _require_note(narrative, "A SAR")
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
    _require_perm(actor, "work_case")
    reason = _require_note(reason, "Freezing a player")
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
    _require_perm(actor, "work_case")
    reason = _require_note(reason, "Blocking withdrawals")
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
    _require_perm(actor, "work_case")
    reason = _require_note(reason, "Lifting a withdrawal block")
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
    _require_perm(actor, "work_case")
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


def resolve_alert(*, alert: Alert, actor, confirm: bool, note: str) -> Alert:
    """Clear (false positive) or confirm an alert. A confirmed sanctions match freezes the
    player and blocks withdrawals for good; a cleared one lifts its withdrawal block."""
    _require_perm(actor, "resolve_alert")
    note = _require_note(note, "Resolving an alert")
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


# --- risk ----------------------------------------------------------------------------------


def _high_risk_countries() -> list[str]:
    rule = AmlRule.objects.filter(kind=Kind.HIGH_RISK_JURISDICTION).first()
    if rule is None:
        return []
    return rules.clean_parameters(rule.kind, rule.parameters)["countries"]


def recompute_risk(*, player: Player) -> RiskAssessment:
    """Score the player from country, KYC level, sanctions hits, alerts and volume, and band
    it low / medium / high with the reasons. High needs level enhanced before the next
    withdrawal (`assess_withdrawal`)."""
    score, reasons = 0, []
    country = (player.country or "").upper()
    if country in _high_risk_countries():
        score += 30
        reasons.append(f"high_risk_country:{country}")
    level = kyc_level(player)
    if level in (KycLevel.NONE, KycLevel.BASIC):
        score += 10
        reasons.append(f"kyc_level:{level}")
    alerts = Alert.objects.filter(player=player).exclude(status=Alert.Status.CLEARED)
    sanctions = alerts.filter(rule__kind=Kind.SANCTIONS_MATCH)
    if sanctions.filter(status=Alert.Status.CONFIRMED).exists():
        score += 100
        reasons.append("sanctions_confirmed")
    elif sanctions.exists():
        score += 60
        reasons.append("sanctions_match_pending")
    other = alerts.exclude(rule__kind=Kind.SANCTIONS_MATCH)
    other_score = other.aggregate(s=Sum("score"))["s"] or 0
    if other_score:
        score += min(other_score, 50)
        reasons.append(f"alerts:{other.count()}")
    volume = deposited_eur(player, since=timezone.now() - timedelta(days=30))
    if volume >= Decimal(settings.COMPLIANCE_HIGH_VALUE_THRESHOLD_EUR):
        score += 20
        reasons.append("high_volume_30d")
    if score >= settings.COMPLIANCE_RISK_HIGH:
        band = RiskAssessment.Level.HIGH
    elif score >= settings.COMPLIANCE_RISK_MEDIUM:
        band = RiskAssessment.Level.MEDIUM
    else:
        band = RiskAssessment.Level.LOW
    with transaction.atomic():
        previous = RiskAssessment.objects.filter(player=player).values_list("level", flat=True)
        previous = previous.first()
        assessment, _ = RiskAssessment.objects.update_or_create(
            player=player, defaults={"score": score, "level": band, "reasons": reasons}
        )
        if previous != band:
            audit(
                action="risk_level_changed",
                player=player,
                subject=f"player:{player.pk}",
                from_level=previous,
                to_level=band,
                score=score,
                reasons=reasons,
            )
    return assessment
