"""The decisions payments and the game wallet ask for before money moves.

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

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from wallets.money import validate_amount

from .. import rules
from ..errors import SelfExcluded, TimedOut
from ..models import (
    AmlRule,
    Case,
    DepositLimit,
    KycLevel,
    PaymentDecision,
    RiskAssessment,
    SelfExclusion,
)
from ..selectors import (
    active_self_exclusion,
    deposited,
    deposited_eur,
    kyc_level,
    load_activity,
    risk_level,
    withdrawals_blocked_by,
)
from .cases import raise_event_alert

Kind = AmlRule.Kind


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
    amount = validate_amount(amount, currency)
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
    amount = validate_amount(amount, currency)
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
