"""A few of the property test's histories end to end: real Adyen notifications, HMAC-signed,
posted over HTTP to the webhook endpoint and processed by the real Celery worker, checked
against the same reference model as `test_event_invariants.py` (which runs 500 histories
through the inbox service in-process). Adyen's notifications carry everything they mean
(its connector calls no API while parsing), so the worker sees exactly what was sent."""

import base64
from decimal import Decimal

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments.models import Deposit, WebhookEvent
from payments.providers.base import provider_secret
from payments.sandbox.adyen import derived_psp_reference, sign_item
from tests.payments.factories import key, make_player, player_client, wait_for
from tests.payments.test_event_invariants import AMOUNT, Model, balance_delta
from wallets.models import Account
from wallets.selectors import ledger_problems

pytestmark = pytest.mark.django_db(transaction=True)

events = st.one_of(
    st.just(("success",)),
    st.just(("failure",)),
    st.tuples(
        st.just("chargeback"),
        st.sampled_from(["d1", "d2"]),
        st.sampled_from([Decimal("5.00"), Decimal("20.00")]),
    ),
    st.tuples(st.just("reversal"), st.sampled_from(["d1", "d2"])),
)
histories = st.lists(st.tuples(events, st.sampled_from([1, 2])), min_size=2, max_size=6)


def notification_item(provider, deposit, event) -> dict:
    kind = event[0]
    item = {
        "merchantAccountCode": provider.merchant_id,
        "merchantReference": deposit.reference,
        "eventDate": "2026-12-01T12:00:00+00:00",
        "additionalData": {},
        "amount": {"value": int(AMOUNT * 100), "currency": "EUR"},
    }
    if kind in ("success", "failure"):
        item.update(
            pspReference=deposit.provider_reference,
            eventCode="AUTHORISATION",
            success="true" if kind == "success" else "false",
            reason="" if kind == "success" else "Refused",
        )
    else:
        dispute = derived_psp_reference(deposit.reference, event[1])
        item.update(
            pspReference=dispute,
            originalReference=deposit.provider_reference,
            eventCode="CHARGEBACK" if kind == "chargeback" else "CHARGEBACK_REVERSED",
            success="true",
        )
        if kind == "chargeback":
            item["amount"] = {"value": int(event[2] * 100), "currency": "EUR"}
    item["additionalData"]["hmacSignature"] = sign_item(
        item, provider_secret(provider, "webhook_secret")
    )
    return item


def post_notification(live_server, provider, item):
    auth = base64.b64encode(
        f"{provider.options['webhook_username']}:{provider.options['webhook_password']}".encode()
    ).decode()
    response = httpx.post(
        f"{live_server.url}/api/v1/payments/webhooks/{provider.code}",
        json={"live": "false", "notificationItems": [{"NotificationRequestItem": item}]},
        headers={"Authorization": f"Basic {auth}"},
        timeout=10,
    )
    assert (response.status_code, response.text) == (200, "[accepted]")


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories)
def test_histories_through_http_and_the_real_worker_keep_the_money_right(
    sandbox, live_server, history
):
    adyen = sandbox["adyen"]
    player = make_player()
    response = player_client(player).post(
        "/api/v1/deposits",
        {"method": "card_adyen", "amount": str(AMOUNT), "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 201, response.json()
    deposit = Deposit.objects.get(reference=response.json()["reference"])
    assert deposit.status == "pending" and deposit.provider_reference

    model = Model(spare_cash=Decimal(0))
    sent = 0
    for event, times in history:
        item = notification_item(adyen, deposit, event)
        for _ in range(times):
            post_notification(live_server, adyen, item)
            sent += 1
        # One at a time, as the model applies them: wait for the worker before the next.
        wait_for(
            lambda sent=sent: (
                WebhookEvent.objects.filter(
                    provider=adyen, body__contains=deposit.reference, processed_at__isnull=False
                ).count()
                >= sent
            ),
            what=f"{sent} processed notifications",
        )
        model.step(event)

    deposit.refresh_from_db()
    assert deposit.status == model.status
    assert balance_delta(deposit, kind=Account.Kind.PLAYER_CASH, player=player) == model.cash
    assert balance_delta(deposit, kind=Account.Kind.PROVIDER_CLEARING) == model.clearing
    assert balance_delta(deposit, kind=Account.Kind.WRITE_OFF) == model.write_off
    assert deposit.charged_back_amount == model.charged_back()
    assert ledger_problems() == []
