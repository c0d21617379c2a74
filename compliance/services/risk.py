"""The player's risk score and band (low / medium / high), recomputed after anything that
moves it: a KYC level change, an alert raised or resolved, a case closed."""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from wallets.models import Player

from .. import rules
from ..models import Alert, AmlRule, KycLevel, RiskAssessment
from ..selectors import deposited_eur, kyc_level
from .audit import audit

Kind = AmlRule.Kind


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
