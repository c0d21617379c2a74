"""Adyen end to end: API → connector → the Adyen sandbox over HTTP → 3-D Secure page →
signed notification → our webhook endpoint → the real Celery worker → wallet."""

import json
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from Adyen import Adyen as AdyenSDK

from payments import services
from payments.models import Chargeback, Deposit, Refund, WebhookEvent
from payments.providers import adapter_for
from payments.providers.base import SUCCEEDED, PayerInstrument, PaymentAdapter
from payments.sandbox import adyen as sandbox_adyen
from payments.sandbox import core
from payments.sandbox.models import SandboxPayment
from payments.sandbox.tasks import send_webhook
from tests.payments.factories import StaffFactory, cash, key, make_player, player_client, wait_for
from tests.payments.test_connector_adyen import only_the_adyen_sandbox
from wallets import selectors
from wallets.models import JournalEntry

pytestmark = pytest.mark.django_db(transaction=True)

RETURN_URL = "https://casino.test/cashier/back"


@pytest.fixture
def _adyen_only(monkeypatch):
    only_the_adyen_sandbox(monkeypatch)


@pytest.fixture
def adyen(_adyen_only, sandbox):
    return sandbox["adyen"]


def start_deposit(player, amount, currency="EUR"):
    response = player_client(player).post(
        "/api/v1/deposits",
        {"method": "card_adyen", "amount": amount, "currency": currency, "return_url": RETURN_URL},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 201, response.json()
    return response.json()


def deposit_status(reference, status, timeout=15):
    return wait_for(
        lambda: Deposit.objects.filter(reference=reference, status=status).first(),
        timeout=timeout,
        what=f"deposit {reference} to be {status}",
    )


def processed_webhooks(reference, count, timeout=15):
    def done():
        events = WebhookEvent.objects.filter(
            payment_reference=reference, processed_at__isnull=False
        )
        return list(events.order_by("pk")) if events.count() >= count else None

    return wait_for(done, timeout=timeout, what=f"{count} processed webhooks for {reference}")


def sandbox_payment(deposit) -> SandboxPayment:
    return SandboxPayment.objects.get(kind="payment", merchant_reference=deposit.reference)


def deposit_entries(deposit) -> int:
    return JournalEntry.objects.filter(idempotency_key=f"deposit:{deposit.reference}").count()


def test_a_deposit_authenticated_on_the_3ds_page_is_credited_by_the_authorisation(adyen):
    player = make_player()
    body = start_deposit(player, "25.00")
    assert body["status"] == "pending"
    assert "/checkoutshopper/threeDS/redirect/" in body["redirect_url"]
    deposit = Deposit.objects.get(reference=body["reference"])
    assert len(deposit.provider_reference) == 16  # the pspReference from RedirectShopper

    assert "Authenticate" in httpx.get(body["redirect_url"]).text
    back = httpx.post(
        body["redirect_url"], data={"action": "authenticate", "payer": "4000 0200 0000 0000"}
    )
    assert back.status_code == 302
    location = urlsplit(back.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == RETURN_URL
    [redirect_result] = parse_qs(location.query)["redirectResult"]

    deposit = deposit_status(body["reference"], "succeeded")
    assert deposit.amount_received == Decimal("25.00")
    assert cash(player) == Decimal("25.00")
    [event] = processed_webhooks(deposit.reference, 1)
    assert (event.event_type, event.outcome) == ("AUTHORISATION", "applied")
    assert selectors.ledger_problems() == []

    # What the shopper brought back tells the same through /payments/details.
    details = adapter_for(adyen).submit_payment_details(
        deposit=deposit, details={"redirectResult": redirect_result}
    )
    assert (details.status, details.provider_reference) == (SUCCEEDED, deposit.provider_reference)
    # The card typed on the page, by its Adyen alias: the same card gives the same fingerprint.
    alias = sandbox_adyen.card_of(sandbox_payment(deposit), core.PAID)["alias"]
    assert details.payer_instrument == PayerInstrument.of("card", alias)
    assert deposit.payer_instrument_fingerprint == details.payer_instrument.fingerprint


def test_the_connector_sends_what_adyens_checkout_api_documents(adyen, monkeypatch):
    sent: list[httpx.Request] = []
    original = PaymentAdapter._client

    def recording_client(self, base_url=None):
        client = original(self, base_url)
        return httpx.Client(
            base_url=client.base_url,
            timeout=client.timeout,
            event_hooks={"request": [sent.append]},
        )

    monkeypatch.setattr(PaymentAdapter, "_client", recording_client)
    player = make_player()
    body = start_deposit(player, "30.01")  # frictionless: Authorised in the answer
    assert body["status"] == "succeeded"

    [request] = sent
    assert request.method == "POST"
    assert request.url.path == "/api/v1/sandbox/adyen/sandbox-adyen/v71/payments"
    assert request.headers["X-API-Key"] == adyen.api_key
    assert request.headers["Idempotency-Key"] == body["reference"]
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "amount": {"value": 3001, "currency": "EUR"},
        "reference": body["reference"],
        "merchantAccount": adyen.merchant_id,
        "returnUrl": RETURN_URL,
        "shopperReference": player.external_id,
        "shopperInteraction": "Ecommerce",
        "channel": "Web",
        "paymentMethod": {
            "type": "scheme",
            "encryptedCardNumber": "test_4111111111111111",
            "encryptedExpiryMonth": "test_03",
            "encryptedExpiryYear": "test_2030",
            "encryptedSecurityCode": "test_737",
        },
        "authenticationData": {
            "attemptAuthentication": "always",
            "threeDSRequestData": {"nativeThreeDS": "disabled"},
        },
        "shopperIP": "127.0.0.1",
    }

    deposit = Deposit.objects.get(reference=body["reference"])
    processed_webhooks(deposit.reference, 1)
    refund = services.refund_deposit(
        deposit=deposit, amount="10.00", actor=StaffFactory(), reason="player asked"
    )
    request = sent[-1]
    assert request.url.path.endswith(f"/v71/payments/{deposit.provider_reference}/refunds")
    assert request.headers["Idempotency-Key"] == refund.reference
    assert json.loads(request.content) == {
        "merchantAccount": adyen.merchant_id,
        "amount": {"value": 1000, "currency": "EUR"},
        "reference": refund.reference,
    }


@pytest.mark.parametrize(
    ("amount", "decline_code", "decline_kind"), [("10.05", "12", "soft"), ("10.06", "5", "hard")]
)
def test_refusals_fail_the_deposit_with_adyens_refusal_reason(
    adyen, amount, decline_code, decline_kind
):
    player = make_player()
    body = start_deposit(player, amount)
    assert (body["status"], body["decline_code"]) == ("failed", decline_code)
    deposit = Deposit.objects.get(reference=body["reference"])
    assert deposit.decline_kind == decline_kind
    # The AUTHORISATION success=false that follows agrees and changes nothing.
    [event] = processed_webhooks(deposit.reference, 1)
    assert (event.event_type, event.outcome) == ("AUTHORISATION", "no_change")
    assert cash(player) == Decimal(0)


def test_a_failed_3ds_authentication_is_a_hard_decline(adyen):
    player = make_player()
    body = start_deposit(player, "25.00")
    httpx.post(body["redirect_url"], data={"action": "fail"})
    deposit = deposit_status(body["reference"], "failed")
    assert (deposit.decline_code, deposit.decline_kind) == ("11", "hard")
    assert cash(player) == Decimal(0)


def test_a_timed_out_payment_waits_and_is_credited_by_the_late_notification(adyen):
    player = make_player()
    body = start_deposit(player, "10.07")
    assert body["status"] == "pending"
    # Adyen has no status query: the janitor finds nothing to apply before the expiry.
    counts = services.poll_stuck_payments(stuck_after=timedelta(0))
    assert (counts["deposits_polled"], counts["deposits_expired"]) == (1, 0)
    assert Deposit.objects.get(reference=body["reference"]).status == "pending"

    deposit = deposit_status(body["reference"], "succeeded", timeout=20)
    assert deposit.provider_reference == sandbox_payment(deposit).sandbox_id
    assert cash(player) == Decimal("10.07")


def test_a_refund_succeeds_by_the_refund_notification_under_its_own_psp_reference(adyen):
    player = make_player()
    body = start_deposit(player, "20.01")
    deposit = Deposit.objects.get(reference=body["reference"], status="succeeded")
    processed_webhooks(deposit.reference, 1)

    refund = services.refund_deposit(
        deposit=deposit, amount="5.00", actor=StaffFactory(), reason="duplicate deposit"
    )
    assert refund.status == Refund.Status.PENDING
    refund = wait_for(
        lambda: Refund.objects.filter(pk=refund.pk, status=Refund.Status.SUCCEEDED).first(),
        what="refund succeeded",
    )
    at_adyen = SandboxPayment.objects.get(kind="refund", merchant_reference=refund.reference)
    assert refund.provider_reference == at_adyen.sandbox_id != deposit.provider_reference
    assert at_adyen.data["payment_psp"] == deposit.provider_reference
    deposit.refresh_from_db()
    assert (deposit.status, deposit.refunded_amount) == ("partially_refunded", Decimal("5.00"))
    assert cash(player) == Decimal("15.01")
    assert selectors.ledger_problems() == []


def test_a_duplicate_and_an_out_of_order_notification_change_nothing(adyen):
    player = make_player()
    twice = start_deposit(player, "20.09")
    late_pending = start_deposit(player, "20.10")
    assert twice["status"] == late_pending["status"] == "pending"  # resultCode Received

    first, second = processed_webhooks(twice["reference"], 2)
    assert (first.outcome, second.outcome) == ("applied", "no_change")
    authorised, pending = processed_webhooks(late_pending["reference"], 2)
    assert (authorised.event_type, pending.event_type) == ("AUTHORISATION", "PENDING")
    assert pending.outcome == "no_change"
    for body in (twice, late_pending):
        deposit = Deposit.objects.get(reference=body["reference"])
        assert deposit.status == "succeeded"
        assert deposit_entries(deposit) == 1
    assert cash(player) == Decimal("40.19")


def test_a_chargeback_takes_the_money_back_once_and_its_reversal_returns_it(adyen):
    player = make_player()
    body = start_deposit(player, "20.12")
    deposit = wait_for(
        lambda: Deposit.objects.filter(
            reference=body["reference"], charged_back_amount=Decimal("20.12")
        ).first(),
        what="the chargeback",
    )
    events = processed_webhooks(deposit.reference, 2)
    assert [e.event_type for e in events] == [
        "AUTHORISATION",
        "NOTIFICATION_OF_CHARGEBACK, CHARGEBACK",
    ]
    [chargeback] = Chargeback.objects.filter(deposit=deposit)
    payment = sandbox_payment(deposit)
    assert chargeback.provider_reference == sandbox_adyen.derived_psp_reference(
        payment.sandbox_id, "dispute"
    )
    assert chargeback.amount == Decimal("20.12")
    assert cash(player) == Decimal(0)

    send_webhook.delay(payment.pk, core.DISPUTE_WON)
    wait_for(
        lambda: Chargeback.objects.filter(pk=chargeback.pk, status="reversed").exists(),
        what="the reversal",
    )
    assert cash(player) == Decimal("20.12")
    # The same notifications again: applied once already.
    send_webhook.delay(payment.pk, core.DISPUTED)
    processed_webhooks(deposit.reference, 4)
    assert Chargeback.objects.filter(deposit=deposit).count() == 1
    assert cash(player) == Decimal("20.12")
    assert selectors.ledger_problems() == []


def test_a_chargeback_notified_before_the_authorisation_charges_back_exactly_once(adyen):
    player = make_player()
    body = start_deposit(player, "20.13")
    assert body["status"] == "pending"
    events = processed_webhooks(body["reference"], 2)
    assert [e.event_type for e in events] == [
        "NOTIFICATION_OF_CHARGEBACK, CHARGEBACK",
        "AUTHORISATION",
    ]
    deposit = Deposit.objects.get(reference=body["reference"])
    assert (deposit.status, deposit.charged_back_amount) == ("succeeded", Decimal("20.13"))
    assert Chargeback.objects.filter(deposit=deposit).count() == 1
    assert deposit_entries(deposit) == 1
    assert cash(player) == Decimal(0)
    assert selectors.ledger_problems() == []


def test_a_badly_signed_notification_is_refused_and_the_deposit_stays_open(adyen):
    player = make_player()
    body = start_deposit(player, "20.11")
    rejected = wait_for(
        lambda: WebhookEvent.objects.filter(
            provider=adyen, is_signature_valid=False, body__contains=body["reference"]
        ).first(),
        what="the rejected delivery",
    )
    assert "does not match" in rejected.signature_error
    assert Deposit.objects.get(reference=body["reference"]).status == "pending"
    assert cash(player) == Decimal(0)


def test_an_expired_deposit_is_cancelled_at_adyen_and_can_no_longer_be_paid(adyen):
    player = make_player()
    body = start_deposit(player, "20.00")
    deposit = services.expire_deposit(deposit=Deposit.objects.get(reference=body["reference"]))
    assert deposit.status == "expired"

    assert adapter_for(adyen).cancel_payment(deposit=deposit).status == "pending"
    assert sandbox_payment(deposit).status == core.CANCELLED
    [event] = processed_webhooks(deposit.reference, 1)
    assert (event.event_type, event.outcome) == ("CANCELLATION", "no_change")

    # The player comes back to the 3-D Secure page after the cancel: nothing is charged.
    httpx.post(body["redirect_url"], data={"action": "authenticate"})
    assert sandbox_payment(deposit).status == core.CANCELLED
    deposit.refresh_from_db()
    assert deposit.status == "expired"
    assert cash(player) == Decimal(0)


def test_a_technical_cancel_by_our_reference_cancels_a_payment_whose_psp_we_never_learnt(adyen):
    player = make_player()
    body = start_deposit(player, "20.00")
    Deposit.objects.filter(reference=body["reference"]).update(provider_reference="")
    deposit = Deposit.objects.get(reference=body["reference"])

    adapter_for(adyen).cancel_payment(deposit=deposit)
    deposit = deposit_status(deposit.reference, "cancelled")
    [event] = processed_webhooks(deposit.reference, 1)
    assert (event.event_type, event.outcome) == ("TECHNICAL_CANCEL", "applied")
    assert deposit.provider_reference == sandbox_payment(deposit).sandbox_id


def test_the_official_sdk_talks_to_the_sandbox(adyen, live_server):
    sdk = AdyenSDK(xapikey=adyen.api_key, platform="test")
    base = f"{live_server.url}/api/v1/sandbox/adyen/{adyen.code}/v72"
    sdk.checkout.payments_api.baseUrl = base
    sdk.checkout.modifications_api.baseUrl = base
    request = {
        "amount": {"value": 1501, "currency": "EUR"},
        "reference": "sdk-payment-1",
        "merchantAccount": adyen.merchant_id,
        "returnUrl": RETURN_URL,
        "paymentMethod": {
            "type": "scheme",
            "encryptedCardNumber": "test_5555555555554444",
            "encryptedExpiryMonth": "test_03",
            "encryptedExpiryYear": "test_2030",
            "encryptedSecurityCode": "test_737",
        },
    }
    payment = sdk.checkout.payments_api.payments(request, idempotency_key="sdk-payment-1").message
    assert payment["resultCode"] == "Authorised"
    refund = sdk.checkout.modifications_api.refund_captured_payment(
        {
            "merchantAccount": adyen.merchant_id,
            "amount": {"value": 500, "currency": "EUR"},
            "reference": "sdk-refund-1",
        },
        payment["pspReference"],
    ).message
    assert (refund["status"], refund["paymentPspReference"]) == (
        "received",
        payment["pspReference"],
    )

    wrong = AdyenSDK(xapikey="AQE-wrong", platform="test")
    wrong.checkout.payments_api.baseUrl = base
    from Adyen.exceptions import AdyenAPIAuthenticationError

    with pytest.raises(AdyenAPIAuthenticationError):
        wrong.checkout.payments_api.payments(request)
