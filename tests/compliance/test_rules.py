"""Each AML rule fires on its pattern and stays silent on a near-miss, through the real
engine over ledger entries written by the wallet services."""

import pytest
from django.core.exceptions import ValidationError

from compliance import monitoring, rules
from compliance.models import Alert, AmlRule, Case, InstrumentUse, MonitoringCursor
from config.celery import app as celery_app
from tests.compliance.factories import ago, bet, deposit, make_player, withdraw

pytestmark = pytest.mark.django_db


def fired(player) -> set[str]:
    monitoring.evaluate_players([player.pk])
    return set(Alert.objects.filter(player=player).values_list("rule__kind", flat=True))


def test_large_deposit_fires_and_one_cent_less_does_not():
    big, small = make_player(), make_player()
    deposit(big, "2000.00")
    deposit(small, "1999.99")
    assert "large_transaction" in fired(big)
    assert "large_transaction" not in fired(small)


def test_large_withdrawal_fires():
    player = make_player()
    deposit(player, "1500.00", when=ago(days=3))
    deposit(player, "1500.00", when=ago(days=2))
    withdraw(player, "2500.00")
    assert "large_transaction" in fired(player)
    alert = Alert.objects.get(player=player, rule__kind="large_transaction")
    assert alert.details == {"kind": "withdrawal_hold", "amount": "2500.00", "currency": "EUR"}


def test_cumulative_deposits_in_the_window_fire_and_below_threshold_do_not():
    over, under = make_player(), make_player()
    for day in (6, 3, 0):
        deposit(over, "1700.00", when=ago(days=day, minutes=1))
        deposit(under, "1600.00", when=ago(days=day, minutes=1))
    assert "cumulative_deposits" in fired(over)
    assert "cumulative_deposits" not in fired(under)


def test_cumulative_deposits_outside_the_window_do_not_count():
    player = make_player()
    deposit(player, "1700.00", when=ago(days=9))
    deposit(player, "1700.00", when=ago(days=3))
    deposit(player, "1700.00")
    assert "cumulative_deposits" not in fired(player)


def test_structuring_fires_on_three_deposits_just_below_the_threshold():
    player = make_player()
    for hours in (30, 10, 1):
        deposit(player, "1850.00", when=ago(hours=hours))
    assert "structuring" in fired(player)
    alert = Alert.objects.get(player=player, rule__kind="structuring")
    assert alert.details["count"] == 3
    assert alert.entries.count() == 3


def test_structuring_is_silent_when_one_deposit_is_outside_the_band():
    player = make_player()
    deposit(player, "1850.00", when=ago(hours=30))
    deposit(player, "1750.00", when=ago(hours=10))
    deposit(player, "1850.00", when=ago(hours=1))
    assert "structuring" not in fired(player)


def test_minimal_play_fires_when_little_of_the_deposit_was_wagered():
    player = make_player()
    deposit(player, "500.00", when=ago(hours=5))
    bet(player, "50.00", when=ago(hours=4))
    withdraw(player, "400.00")
    assert "minimal_play" in fired(player)
    alert = Alert.objects.get(player=player, rule__kind="minimal_play")
    assert alert.details["wagering_pct"] == "10.0"


def test_minimal_play_is_silent_when_enough_was_wagered():
    player = make_player()
    deposit(player, "500.00", when=ago(hours=5))
    bet(player, "150.00", when=ago(hours=4))
    withdraw(player, "300.00")
    assert "minimal_play" not in fired(player)


def test_more_than_five_deposits_in_an_hour_fire_velocity_five_do_not():
    fast, steady = make_player(), make_player()
    for minutes in (50, 40, 30, 20, 10, 1):
        deposit(fast, "10.00", when=ago(minutes=minutes))
    for minutes in (50, 40, 30, 20, 10):
        deposit(steady, "10.00", when=ago(minutes=minutes))
    assert "deposit_velocity" in fired(fast)
    assert "deposit_velocity" not in fired(steady)


def test_rapid_deposit_withdraw_cycle_fires_within_the_window_only():
    quick, slow = make_player(), make_player()
    deposit(quick, "1000.00", when=ago(minutes=30))
    withdraw(quick, "900.00")
    deposit(slow, "1000.00", when=ago(hours=3))
    withdraw(slow, "900.00")
    assert "rapid_cycle" in fired(quick)
    assert "rapid_cycle" not in fired(slow)


def test_instrument_shared_by_two_players_flags_both():
    first, second, loner = make_player(), make_player(), make_player()
    deposit(first, "20.00", instrument="card:abc")
    deposit(second, "20.00", instrument="card:abc")
    deposit(loner, "20.00", instrument="card:xyz")
    monitoring.evaluate_players([first.pk, second.pk, loner.pk])
    shared = Alert.objects.filter(rule__kind="shared_instrument")
    assert set(shared.values_list("player_id", flat=True)) == {first.pk, second.pk}
    assert shared.get(player=first).details["other_players"] == [second.pk]
    assert InstrumentUse.objects.count() == 3


def test_many_instruments_in_a_week_fire_and_three_do_not():
    many, few = make_player(), make_player()
    for n in range(4):
        deposit(many, "20.00", instrument=f"iban:many-{n}", instrument_type="iban")
    for n in range(3):
        deposit(few, "20.00", instrument=f"iban:few-{n}", instrument_type="iban")
    assert "many_instruments" in fired(many)
    assert "many_instruments" not in fired(few)


def test_high_risk_jurisdiction_fires_for_resident_and_not_for_others():
    risky, home = make_player(country="MM"), make_player(country="MT")
    deposit(risky, "20.00")
    deposit(home, "20.00")
    assert "high_risk_jurisdiction" in fired(risky)
    assert "high_risk_jurisdiction" not in fired(home)


def test_dormant_account_suddenly_active_fires_after_180_days_not_after_100():
    dormant, recent = make_player(), make_player()
    deposit(dormant, "20.00", when=ago(days=200))
    deposit(dormant, "1000.00")
    deposit(recent, "20.00", when=ago(days=100))
    deposit(recent, "1000.00")
    assert "dormant_reactivation" in fired(dormant)
    assert Alert.objects.get(player=dormant, rule__kind="dormant_reactivation").details[
        "dormant_days"
    ] in (199, 200)
    assert "dormant_reactivation" not in fired(recent)


def test_net_deposits_over_150_pounds_in_30_days_is_a_responsible_gambling_alert():
    player = make_player()
    deposit(player, "176.00")  # £150 is 175.50 EUR at the reference rate
    assert "net_deposits" in fired(player)
    alert = Alert.objects.get(player=player, rule__kind="net_deposits")
    assert alert.rule.category == "responsible_gambling"
    assert alert.details["threshold_eur"] == "175.50"


def test_net_deposits_count_paid_out_withdrawals():
    player = make_player()
    deposit(player, "200.00", when=ago(days=2))
    withdraw(player, "30.00", when=ago(days=1), settle=True)
    assert "net_deposits" not in fired(player)


# --- the engine -----------------------------------------------------------------------------


def test_alerts_are_raised_once_and_grouped_into_one_open_case():
    player = make_player()
    deposit(player, "2000.00")
    monitoring.evaluate_players([player.pk])
    monitoring.evaluate_players([player.pk])
    kinds = sorted(Alert.objects.filter(player=player).values_list("rule__kind", flat=True))
    assert kinds == ["large_transaction", "net_deposits"]
    case = Case.objects.get(player=player)
    assert case.status == "open"
    assert case.risk_score == 25  # 20 + 5, the seeded scores
    assert set(case.alerts.values_list("rule__kind", flat=True)) == set(kinds)


def test_disabled_rule_does_not_fire_and_parameters_are_read_from_the_row():
    player = make_player()
    deposit(player, "1500.00")
    AmlRule.objects.filter(kind="net_deposits").update(is_enabled=False)
    AmlRule.objects.filter(kind="large_transaction").update(parameters={"threshold_eur": "1000"})
    assert fired(player) == {"large_transaction"}


def test_bad_rule_parameters_are_refused():
    with pytest.raises(ValidationError):
        rules.clean_parameters("structuring", {"min_count": "three"})
    with pytest.raises(ValidationError):
        rules.clean_parameters("large_transaction", {"treshold_eur": "10"})
    with pytest.raises(ValidationError):
        rules.clean_parameters("high_risk_jurisdiction", {"countries": ["IRN"]})
    assert rules.clean_parameters("deposit_velocity", {"max_count": 9})["max_count"] == 9


def test_a_committed_deposit_is_monitored_by_the_task(django_capture_on_commit_callbacks):
    player = make_player()
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            deposit(player, "2500.00")
    finally:
        celery_app.conf.task_always_eager = False
    assert Alert.objects.filter(player=player, rule__kind="large_transaction").exists()


def test_a_bet_does_not_enqueue_monitoring(django_capture_on_commit_callbacks):
    player = make_player()
    deposit(player, "20.00")
    with django_capture_on_commit_callbacks() as callbacks:
        bet(player, "5.00")
    assert callbacks == []


def test_the_sweep_catches_entries_whose_task_was_lost_and_moves_its_cursor():
    player = make_player()
    entry = deposit(player, "3000.00", when=ago(minutes=5))
    assert monitoring.sweep_ledger() >= 1
    assert Alert.objects.filter(player=player, rule__kind="large_transaction").exists()
    assert MonitoringCursor.objects.get(name="ledger").last_entry_id >= entry.pk
    assert monitoring.sweep_ledger() == 0


def test_batch_monitors_every_active_player():
    players = [make_player() for _ in range(3)]
    for player in players:
        deposit(player, "2100.00", when=ago(days=1))
    assert monitoring.monitor_active_players(chunk_size=2) == 3
    assert Alert.objects.filter(rule__kind="large_transaction").count() == 3


def test_thresholds_apply_in_eur_for_other_currencies():
    player = make_player()
    deposit(player, "0.034", currency="BTC")  # 2,040 EUR at the reference rate
    assert "large_transaction" in fired(player)
    assert Alert.objects.get(player=player, rule__kind="large_transaction").details == {
        "kind": "deposit",
        "amount": "0.03400000",
        "currency": "BTC",
    }
