import threading

import pytest
from django.db import connection

from compliance import services
from compliance.models import Alert, AmlRule, Case
from tests.compliance.factories import make_player


@pytest.mark.django_db(transaction=True)
def test_simultaneous_alerts_for_one_player_join_one_open_case():
    player = make_player()
    rules = list(AmlRule.objects.exclude(kind__in=AmlRule.EVENT_KINDS)[:6])
    barrier = threading.Barrier(len(rules))
    errors = []

    def raise_one(rule):
        try:
            barrier.wait()
            services.raise_alert(rule=rule, player=player, dedup_key="same-moment", details={})
        except Exception as error:  # reported below: a thread's exception is otherwise lost
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=raise_one, args=(rule,)) for rule in rules]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    case = Case.objects.get(player=player)
    assert Alert.objects.filter(player=player, case=case).count() == len(rules)
    assert case.risk_score == sum(rule.score for rule in rules)


@pytest.mark.django_db(transaction=True)
def test_the_same_hit_raised_twice_at_once_is_one_alert():
    player = make_player()
    rule = AmlRule.objects.get(kind="large_transaction")
    barrier = threading.Barrier(4)
    results = []

    def raise_one():
        try:
            barrier.wait()
            results.append(
                services.raise_alert(rule=rule, player=player, dedup_key="entry:9", details={})
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=raise_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(1 for r in results if r is not None) == 1
    assert Alert.objects.filter(player=player).count() == 1
    assert Case.objects.get(player=player).risk_score == rule.score
