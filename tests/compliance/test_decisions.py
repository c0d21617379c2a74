from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from compliance import services
from compliance.errors import SelfExcluded, TimedOut
from compliance.models import Alert, KycLevel, PaymentDecision, SelfExclusion
from tests.compliance.factories import deposit, make_player
from wallets.signals import bet_requested

pytestmark = pytest.mark.django_db

GB_IP = "81.2.69.142"
US_IP = "8.8.8.8"


def assess_deposit(player, amount="100.00", currency="EUR", ip=None):
    return services.assess_deposit(
        player=player, amount=Decimal(amount), currency=currency, method="card", ip=ip
    )


def assess_withdrawal(player, amount="100.00", currency="EUR", ip=None):
    return services.assess_withdrawal(
        player=player, amount=Decimal(amount), currency=currency, method="card", ip=ip
    )


def years_ago(years: int, days: int = 0) -> date:
    today = timezone.localdate()
    return today.replace(year=today.year - years) + timedelta(days=days)


# --- KYC levels -----------------------------------------------------------------------------


def test_unverified_player_cannot_deposit_and_the_decision_is_stored_with_its_inputs():
    player = make_player(level=KycLevel.NONE)
    decision = assess_deposit(player, "25.00", ip=None)
    assert (decision.outcome, decision.reasons) == ("refuse", ["kyc_required"])
    stored = PaymentDecision.objects.get(player=player)
    assert stored.action == "deposit" and stored.outcome == "refuse"
    assert stored.reasons == ["kyc_required"]
    assert stored.inputs["amount"] == "25.00"
    assert stored.inputs["kyc_level"] == "none"


def test_basic_level_deposits_up_to_its_lifetime_cap_and_no_more():
    player = make_player(level=KycLevel.BASIC)
    deposit(player, "1900.00")
    assert assess_deposit(player, "100.00").is_allowed
    refused = assess_deposit(player, "100.01")
    assert refused.reasons == ["kyc_verification_required"]


def test_basic_level_cannot_withdraw_verified_can():
    basic = make_player(level=KycLevel.BASIC)
    assert assess_withdrawal(basic).reasons == ["kyc_verification_required"]
    verified = make_player(level=KycLevel.VERIFIED)
    assert assess_withdrawal(verified).outcome == "allow"


def test_high_value_needs_enhanced_level_both_ways():
    verified = make_player(level=KycLevel.VERIFIED)
    assert assess_deposit(verified, "9999.99").is_allowed
    assert assess_deposit(verified, "10000.00").reasons == ["enhanced_due_diligence_required"]
    assert assess_withdrawal(verified, "10000.00").reasons == ["enhanced_due_diligence_required"]
    enhanced = make_player(level=KycLevel.ENHANCED)
    assert assess_deposit(enhanced, "10000.00").is_allowed
    assert assess_withdrawal(enhanced, "10000.00").is_allowed


def test_thresholds_compare_other_currencies_at_the_reference_rate():
    verified = make_player(level=KycLevel.VERIFIED)
    # 0.17 BTC at 60,000 EUR = 10,200 EUR: over the high-value threshold.
    assert assess_deposit(verified, "0.17", "BTC").reasons == ["enhanced_due_diligence_required"]
    assert assess_deposit(verified, "0.16", "BTC").is_allowed


# --- age and location -----------------------------------------------------------------------


def test_under_age_player_is_refused_and_the_minimum_age_is_per_country():
    assert assess_deposit(make_player(date_of_birth=years_ago(18, days=1))).reasons == ["under_age"]
    assert assess_deposit(make_player(date_of_birth=years_ago(18))).is_allowed
    greek_twenty = make_player(country="GR", date_of_birth=years_ago(20))
    assert assess_deposit(greek_twenty).reasons == ["under_age"]


def test_missing_date_of_birth_is_refused():
    assert assess_deposit(make_player(date_of_birth=None)).reasons == ["date_of_birth_required"]


def test_blocked_residence_or_ip_country_is_refused():
    assert assess_deposit(make_player(country="US")).reasons == ["blocked_jurisdiction"]
    decision = assess_deposit(make_player(country="MT"), ip=US_IP)
    assert decision.outcome == "refuse"
    assert "blocked_jurisdiction" in decision.reasons


def test_ip_country_mismatch_raises_an_alert_and_withdrawal_goes_to_review():
    player = make_player(country="MT")
    assert assess_deposit(player, ip=GB_IP).is_allowed
    alert = Alert.objects.get(player=player)
    assert alert.rule.kind == "location_mismatch"
    assert alert.details["ip_country"] == "GB"
    assert alert.case is not None
    decision = assess_withdrawal(player, ip=GB_IP)
    assert (decision.outcome, decision.reasons) == ("review", ["location_mismatch"])
    stored = PaymentDecision.objects.filter(player=player, action="deposit").get()
    assert stored.inputs["ip_country"] == "GB"
    assert "note:location_mismatch_alerted" in stored.reasons


def test_private_ip_is_not_a_mismatch():
    player = make_player(country="MT")
    assert assess_withdrawal(player, ip="10.1.2.3").is_allowed
    assert not Alert.objects.filter(player=player).exists()


def test_bad_amount_is_refused_before_anything_is_stored():
    from wallets.errors import BadPrecision

    player = make_player()
    with pytest.raises(BadPrecision):
        assess_deposit(player, "10.001")
    assert not PaymentDecision.objects.exists()


# --- self-exclusion and bets ----------------------------------------------------------------


def test_self_excluded_player_cannot_deposit_or_bet_but_can_withdraw():
    player = make_player()
    services.self_exclude(player=player, kind="self_exclusion", days=180, reason="needs a break")
    assert assess_deposit(player).reasons == ["self_excluded"]
    with pytest.raises(SelfExcluded) as refused:
        bet_requested.send(sender=None, player=player, currency="EUR", amount=Decimal("1.00"))
    assert refused.value.code == "self_excluded"
    assert assess_withdrawal(player).is_allowed
    assert PaymentDecision.objects.filter(player=player, action="bet", outcome="refuse").exists()


def test_timed_out_player_cannot_bet_until_the_time_out_ends():
    player = make_player()
    exclusion = services.self_exclude(player=player, kind="timeout", days=1)
    with pytest.raises(TimedOut):
        bet_requested.send(sender=None, player=player, currency="EUR", amount=Decimal("1.00"))
    assert assess_deposit(player).reasons == ["timed_out"]
    SelfExclusion.objects.filter(pk=exclusion.pk).update(ends_at=timezone.now())
    bet_requested.send(sender=None, player=player, currency="EUR", amount=Decimal("1.00"))
    assert assess_deposit(player).is_allowed


def test_a_player_in_good_standing_may_bet():
    player = make_player()
    responses = bet_requested.send(
        sender=None, player=player, currency="EUR", amount=Decimal("1.00")
    )
    assert responses  # our receiver ran and returned without refusing
    assert not PaymentDecision.objects.filter(action="bet").exists()


@pytest.mark.parametrize(
    ("kind", "days", "permanent"),
    [
        ("timeout", 0, False),
        ("timeout", 43, False),
        ("self_exclusion", 179, False),
        ("x", 5, False),
    ],
)
def test_exclusion_lengths_outside_the_rules_are_refused(kind, days, permanent):
    from compliance.errors import InvalidLimit

    player = make_player()
    with pytest.raises(InvalidLimit):
        services.self_exclude(player=player, kind=kind, days=days, permanent=permanent)
    assert not SelfExclusion.objects.exists()


def test_permanent_self_exclusion_never_ends():
    player = make_player()
    exclusion = services.self_exclude(player=player, kind="self_exclusion", permanent=True)
    assert exclusion.ends_at is None
    far_future = timezone.now() + timedelta(days=365 * 50)
    assert services.active_self_exclusion(player, far_future) == exclusion


def test_self_exclusion_is_reported_over_a_time_out_running_at_the_same_time():
    player = make_player()
    services.self_exclude(player=player, kind="timeout", days=7)
    services.self_exclude(player=player, kind="self_exclusion", days=365)
    services.self_exclude(player=player, kind="timeout", days=1)
    assert assess_deposit(player).reasons == ["self_excluded"]


def test_withdrawal_after_barely_playing_the_deposit_goes_to_review():
    from tests.compliance.factories import bet

    player = make_player()
    deposit(player, "500.00")
    bet(player, "40.00")
    decision = assess_withdrawal(player, "400.00")
    assert (decision.outcome, decision.reasons) == ("review", ["compliance_review"])
    stored = PaymentDecision.objects.get(player=player, action="withdrawal")
    assert "note:minimal_play" in stored.reasons


def test_withdrawal_after_real_play_is_allowed():
    from tests.compliance.factories import bet

    player = make_player()
    deposit(player, "500.00")
    bet(player, "150.00")
    assert assess_withdrawal(player, "300.00").is_allowed


def test_currency_without_a_reference_rate_is_refused_and_nothing_is_stored(settings):
    from wallets.errors import UnknownCurrency

    settings.COMPLIANCE_EUR_RATES = {"EUR": "1"}
    with pytest.raises(UnknownCurrency):
        assess_deposit(make_player(), "10.00", "USD")
    assert not PaymentDecision.objects.exists()
