"""Two requests with one Idempotency-Key at the same moment: one deposit, answered 201 to one
and 200 (the same deposit) to the other, as the API documents."""

import threading

import pytest
from django.db import connection

from payments.models import Deposit
from tests.payments.factories import key, make_player, player_client
from tests.payments.scripted import install_scripted_provider

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_replays_of_one_key_make_one_deposit_answered_201_then_200(monkeypatch):
    install_scripted_provider(monkeypatch)
    player = make_player()
    idempotency_key = key()
    both_checked = threading.Barrier(2, timeout=10)

    from payments.services import deposits

    checked = deposits.compliance.assess_deposit

    def assess_then_wait(**kwargs):
        # Both requests have looked for the key and found nothing before either inserts.
        decision = checked(**kwargs)
        both_checked.wait()
        return decision

    monkeypatch.setattr(deposits.compliance, "assess_deposit", assess_then_wait)
    answers = []

    def post():
        try:
            response = player_client(player).post(
                "/api/v1/deposits",
                {"method": "scripted", "amount": "15.00", "currency": "EUR"},
                format="json",
                HTTP_IDEMPOTENCY_KEY=idempotency_key,
            )
            answers.append((response.status_code, response.json()["reference"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(status for status, _ in answers) == [200, 201]
    assert len({reference for _, reference in answers}) == 1
    assert Deposit.objects.filter(player=player).count() == 1
