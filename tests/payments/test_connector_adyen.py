"""Adyen connector: the HMAC against Adyen's published vectors and the official `Adyen` SDK in
both directions, the notification → event mapping, and deliveries refused through the HTTP
webhook endpoint with nothing moved. End to end through the sandbox and a real worker:
test_connector_adyen_e2e.py."""

import base64
import contextlib
import copy
import json
import random
from decimal import Decimal

import pytest
from Adyen.util import generate_notification_sig, is_valid_hmac_notification
from django.test import Client

from payments.models import Deposit, PaymentProvider, WebhookEvent
from payments.providers.adyen import (
    AdyenConnector,
    item_signature,
    signing_string,
)
from payments.providers.base import (
    CANCELLED,
    DEPOSIT,
    DISPUTE,
    DISPUTE_CHARGEBACK,
    DISPUTE_LOST,
    DISPUTE_NOTIFIED,
    DISPUTE_REVERSED,
    EXPIRED,
    FAILED,
    PENDING,
    REFUND,
    SUCCEEDED,
    InvalidSignature,
    MalformedWebhook,
    PayerInstrument,
)
from payments.sandbox import adyen as sandbox_adyen
from payments.sandbox import core
from payments.sandbox.models import SandboxPayment
from payments.services import ensure_sandbox_providers
from tests.payments.factories import make_player
from wallets.models import JournalEntry

pytestmark = pytest.mark.django_db

KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
MERCHANT = "TestMerchant"


# --- Adyen's published vectors ----------------------------------------------------------------

# The HMAC example from Adyen's "Verify HMAC signatures" page, also the official Python SDK's
# test (test/UtilTest.py: test_notification_request_item_hmac).
ADYEN_DOCS_ITEM = {
    "pspReference": "7914073381342284",
    "merchantReference": "TestPayment-1407325143704",
    "merchantAccountCode": "TestMerchant",
    "amount": {"currency": "EUR", "value": 1130},
    "eventCode": "AUTHORISATION",
    "success": "true",
    "eventDate": "2019-05-06T17:15:34.121+02:00",
    "operations": ["CANCEL", "CAPTURE", "REFUND"],
    "paymentMethod": "visa",
}
ADYEN_DOCS_SIGNATURE = "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="

# Real test-environment notifications whose merchantReference holds a backslash and a colon
# (SDK test/mocks/util/{backslash,colon}_notification.json, key from test_webhooks_with_slashes):
# the signed fields are joined as they are, nothing is escaped.
SLASHES_KEY = "74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174"
SLASHES_ITEMS = [
    {
        "amount": {"currency": "EUR", "value": 1000},
        "eventCode": "AUTHORISATION",
        "merchantAccountCode": "AntoniStroinski",
        "merchantReference": "\\\\slashes are fun",
        "pspReference": "T7FD4VM4D3RZNN82",
        "success": "true",
        "additionalData": {"hmacSignature": "nIgT81gaB5oJpn2jPXupDq68iRo2wUlBsuYjtYfwKqo="},
    },
    {
        "amount": {"currency": "EUR", "value": 1000},
        "eventCode": "AUTHORISATION",
        "merchantAccountCode": "AntoniStroinski",
        "merchantReference": ":slashes are fun",
        "pspReference": "M8NB66SBZSGLNK82",
        "success": "true",
        "additionalData": {"hmacSignature": "2EQYm7YJpKO4EtHSPu55SQTyWf8dkW5u2nD1tJFpViA="},
    },
]


def connector(key=KEY, merchant=MERCHANT, **options) -> AdyenConnector:
    return AdyenConnector(
        PaymentProvider(
            code="test-adyen",
            kind="card",
            protocol="adyen",
            api_base_url="https://checkout-test.adyen.com/",
            api_key="AQE-test",
            webhook_secret=key,
            merchant_id=merchant,
            options=options,
        )
    )


def delivery(*items) -> bytes:
    return json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": i} for i in items]}
    ).encode()


def signed(item: dict, key: str = KEY) -> dict:
    """Signed with the official SDK's helper."""
    item = copy.deepcopy(item)
    item.setdefault("additionalData", {})
    unsigned = {k: v for k, v in item.items() if k != "additionalData"}
    item["additionalData"]["hmacSignature"] = generate_notification_sig(unsigned, key).decode()
    return item


def item(event_code="AUTHORISATION", psp="8815161318854998", success="true", **fields):
    return {
        "amount": {"currency": "EUR", "value": 1000},
        "eventCode": event_code,
        "eventDate": "2026-01-01T12:00:00+01:00",
        "merchantAccountCode": MERCHANT,
        "merchantReference": "dep_abc",
        "pspReference": psp,
        "success": success,
        **fields,
    }


def test_our_signature_reproduces_adyens_published_example():
    assert signing_string(ADYEN_DOCS_ITEM) == (
        "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
    )
    assert item_signature(ADYEN_DOCS_ITEM, KEY) == ADYEN_DOCS_SIGNATURE
    signed_item = {**ADYEN_DOCS_ITEM, "additionalData": {"hmacSignature": ADYEN_DOCS_SIGNATURE}}
    connector(merchant="TestMerchant").verify_webhook(body=delivery(signed_item), headers={})


def test_notifications_with_backslashes_and_colons_verify_as_adyen_signed_them():
    adapter = connector(key=SLASHES_KEY, merchant="AntoniStroinski")
    adapter.verify_webhook(body=delivery(*SLASHES_ITEMS), headers={})
    for vector in SLASHES_ITEMS:
        assert item_signature(vector, SLASHES_KEY) == vector["additionalData"]["hmacSignature"]


def test_a_notification_signed_with_the_official_sdk_passes_our_check():
    adapter = connector()
    for event_code, success in [("AUTHORISATION", "false"), ("REFUND", "true")]:
        body = delivery(signed(item(event_code, success=success, originalReference="X" * 16)))
        adapter.verify_webhook(body=body, headers={})


def test_our_signatures_pass_the_official_sdks_check():
    for candidate in (item(), item("CHARGEBACK", originalReference="8815161318854998")):
        ours = {**candidate, "additionalData": {"hmacSignature": item_signature(candidate, KEY)}}
        assert is_valid_hmac_notification(ours, KEY)
        tampered = {**ours, "amount": {"currency": "EUR", "value": 1}}
        assert not is_valid_hmac_notification(tampered, KEY)


def sandbox_object(kind=SandboxPayment.Kind.PAYMENT, amount="10.00", **data):
    return SandboxPayment(
        pk=1,
        provider_code="sandbox-adyen",
        kind=kind,
        sandbox_id="V4HZ4RBFJGXXGN82",
        merchant_reference="dep_abc",
        amount=Decimal(amount),
        currency="EUR",
        status=core.PAID,
        data={"customer": "player-1", **data},
    )


def sandbox_provider(**changes) -> PaymentProvider:
    credentials = sandbox_adyen.credentials()
    return PaymentProvider(
        code="sandbox-adyen",
        kind="card",
        protocol="adyen",
        api_base_url="http://testserver/api/v1/sandbox/adyen/sandbox-adyen/",
        api_key=credentials["api_key"],
        webhook_secret=credentials["webhook_secret"],
        merchant_id=credentials["merchant_id"],
        options=credentials["options"],
        **changes,
    )


SANDBOX_OUTCOMES = [
    (SandboxPayment.Kind.PAYMENT, core.PAID, ["AUTHORISATION"]),
    (SandboxPayment.Kind.PAYMENT, core.DECLINED_SOFT, ["AUTHORISATION"]),
    (SandboxPayment.Kind.PAYMENT, core.DECLINED_HARD, ["AUTHORISATION"]),
    (SandboxPayment.Kind.PAYMENT, core.CANCELLED, ["CANCELLATION"]),
    (SandboxPayment.Kind.PAYMENT, core.EXPIRED, ["OFFER_CLOSED"]),
    (SandboxPayment.Kind.PAYMENT, core.PENDING, ["PENDING"]),
    (SandboxPayment.Kind.PAYMENT, core.DISPUTED, ["NOTIFICATION_OF_CHARGEBACK", "CHARGEBACK"]),
    (SandboxPayment.Kind.PAYMENT, core.DISPUTE_WON, ["CHARGEBACK_REVERSED"]),
    (SandboxPayment.Kind.REFUND, core.PAID, ["REFUND"]),
    (SandboxPayment.Kind.REFUND, core.DECLINED_SOFT, ["REFUND"]),
]


@pytest.mark.parametrize(("kind", "outcome", "codes"), SANDBOX_OUTCOMES)
def test_the_sandboxs_notifications_verify_with_the_official_sdk_and_with_ours(
    kind, outcome, codes
):
    provider = sandbox_provider()
    [(body, headers)] = sandbox_adyen.webhooks(
        sandbox_object(kind, payment_psp="V4HZ4RBFJGXXGN82"),
        outcome,
        provider=provider,
        signed_right=True,
    )
    payload = json.loads(body)
    items = [w["NotificationRequestItem"] for w in payload["notificationItems"]]
    assert [i["eventCode"] for i in items] == codes
    for one in items:
        assert is_valid_hmac_notification(one, provider.webhook_secret)
    adapter = AdyenConnector(provider)
    adapter.verify_webhook(body=body, headers={k.lower(): v for k, v in headers.items()})
    assert adapter.parse_webhook(body=body, headers={})


def test_the_sandboxs_bad_signature_scenario_fails_the_sdk_and_us_alike():
    provider = sandbox_provider()
    [(body, headers)] = sandbox_adyen.webhooks(
        sandbox_object(), core.PAID, provider=provider, signed_right=False
    )
    one = json.loads(body)["notificationItems"][0]["NotificationRequestItem"]
    assert len(one["additionalData"]["hmacSignature"]) == 44  # base64 of 32 bytes
    assert not is_valid_hmac_notification(one, provider.webhook_secret)
    with pytest.raises(InvalidSignature, match="does not match"):
        AdyenConnector(provider).verify_webhook(
            body=body, headers={k.lower(): v for k, v in headers.items()}
        )


def test_the_sandbox_issues_credentials_in_adyens_formats():
    credentials = sandbox_adyen.credentials()
    assert credentials["api_key"].startswith("AQE")
    assert len(credentials["webhook_secret"]) == 64
    bytes.fromhex(credentials["webhook_secret"])
    assert credentials["merchant_id"]
    assert credentials != sandbox_adyen.credentials()


# --- verification refuses, and only with InvalidSignature -------------------------------------


def test_every_item_of_a_batch_must_verify():
    good = signed(item(psp="1111111111111111"))
    bad = signed(item(psp="2222222222222222"))
    bad["amount"]["value"] = 1
    with pytest.raises(InvalidSignature, match="Item 1"):
        connector().verify_webhook(body=delivery(good, bad), headers={})


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"notificationItems": []}',
        b'{"notificationItems": {}}',
        b'{"notificationItems": [1]}',
        b'{"notificationItems": [{"NotificationRequestItem": []}]}',
        delivery(item()),  # unsigned
        delivery({**item(), "additionalData": {"hmacSignature": 7}}),
        delivery({**item(), "additionalData": "hmac"}),
        delivery({**signed(item()), "amount": {"currency": "EUR", "value": "1000"}}),
        delivery({**signed(item()), "amount": {"currency": "EUR", "value": True}}),
        delivery({**signed(item()), "success": True}),
        delivery({**signed(item()), "amount": None}),
        delivery({**item(), "additionalData": {"hmacSignature": "ñ" * 44}}),
        b"\xff\xfe{",
        b"[" * 100_000,
    ],
)
def test_malformed_or_unsigned_deliveries_raise_invalid_signature_only(body):
    with pytest.raises(InvalidSignature):
        connector().verify_webhook(body=body, headers={})


def test_random_bytes_never_raise_anything_but_invalid_signature():
    rng = random.Random(10)
    adapter = connector()
    template = delivery(signed(item()))
    for _ in range(500):
        mutated = bytearray(template)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        with contextlib.suppress(InvalidSignature):
            adapter.verify_webhook(body=bytes(mutated), headers={"authorization": "Basic ñ"})


def test_a_key_that_is_not_hex_refuses_every_delivery():
    with pytest.raises(InvalidSignature, match="not hex"):
        connector(key="whsec_not_hex").verify_webhook(body=delivery(signed(item())), headers={})


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer x", basic("adyen", "wrong"), basic("other", "s3cret"), "Basic !!!", "Basic ñ"],
)
def test_basic_authentication_is_required_when_configured(authorization):
    adapter = connector(webhook_username="adyen", webhook_password="s3cret")
    body = delivery(signed(item()))
    with pytest.raises(InvalidSignature):
        adapter.verify_webhook(body=body, headers={"authorization": authorization})
    adapter.verify_webhook(body=body, headers={"authorization": basic("adyen", "s3cret")})


def test_the_webhook_password_from_the_environment_wins(monkeypatch):
    monkeypatch.setenv("PAYMENTS_TEST_ADYEN_WEBHOOK_PASSWORD", "from-env")
    adapter = connector(webhook_username="adyen", webhook_password="from-db")
    body = delivery(signed(item()))
    adapter.verify_webhook(body=body, headers={"authorization": basic("adyen", "from-env")})
    with pytest.raises(InvalidSignature):
        adapter.verify_webhook(body=body, headers={"authorization": basic("adyen", "from-db")})


# --- parsing ----------------------------------------------------------------------------------


def parse(*items):
    body = delivery(*(signed(i) for i in items))
    adapter = connector()
    adapter.verify_webhook(body=body, headers={})
    return adapter.parse_webhook(body=body, headers={})


def test_a_successful_authorisation_names_the_payment_and_the_card_alias():
    [event] = parse(
        item(
            additionalData={"alias": "A373176724022941", "cardHolderName": "J. Smith"},
            reason="012345:1111:03/2030",
        )
    )
    assert (event.subject, event.reference, event.provider_reference) == (
        DEPOSIT,
        "dep_abc",
        "8815161318854998",
    )
    assert event.dedup_key == "8815161318854998:AUTHORISATION:true"
    assert event.result.status == SUCCEEDED
    assert event.result.payer_instrument == PayerInstrument.of("card", "A373176724022941")
    assert event.result.payer_name == "J. Smith"


@pytest.mark.parametrize(
    ("reason", "code", "kind"),
    [
        ("Not enough balance", "12", "soft"),
        ("Issuer Unavailable", "9", "soft"),
        ("Refused", "2", "soft"),
        ("Blocked Card", "5", "hard"),
        ("FRAUD", "20", "hard"),
        ("CVC Declined", "24", "hard"),
        ("Transaction blocked by Adyen to prevent excessive retry fees", "46", "hard"),
        ("Something Adyen adds next year", "Something Adyen adds next year", "hard"),
    ],
)
def test_a_refused_authorisation_maps_adyens_refusal_reason_to_soft_or_hard(reason, code, kind):
    [event] = parse(item(success="false", reason=reason))
    assert (event.result.status, event.result.decline_code, event.result.decline_kind) == (
        FAILED,
        code,
        kind,
    )
    assert event.dedup_key.endswith(":AUTHORISATION:false")


def test_cancellations_expiry_and_pending_map_to_our_statuses():
    events = parse(
        item("CANCELLATION", psp="C" * 16, originalReference="P" * 16),
        item("TECHNICAL_CANCEL", psp="D" * 16, originalReference="Q" * 16, success="false"),
        item("OFFER_CLOSED", psp="E" * 16),
        item("PENDING", psp="F" * 16),
    )
    assert [(e.provider_reference, e.result.status) for e in events] == [
        ("P" * 16, CANCELLED),
        ("Q" * 16, PENDING),  # the cancel failed: the payment stands
        ("E" * 16, EXPIRED),
        ("F" * 16, PENDING),
    ]


def test_refund_notifications_name_the_refund_by_our_reference_and_its_own_psp():
    events = parse(
        item("REFUND", psp="R" * 16, originalReference="P" * 16, merchantReference="ref_1"),
        item("REFUND", psp="S" * 16, success="false", merchantReference="ref_2"),
        item("REFUND_FAILED", psp="T" * 16, merchantReference="ref_3"),
    )
    assert [(e.subject, e.reference, e.provider_reference, e.result.status) for e in events] == [
        (REFUND, "ref_1", "R" * 16, SUCCEEDED),
        (REFUND, "ref_2", "S" * 16, FAILED),
        (REFUND, "ref_3", "T" * 16, FAILED),
    ]


@pytest.mark.parametrize(
    ("event_code", "action", "dispute_reference"),
    [
        ("NOTIFICATION_OF_CHARGEBACK", DISPUTE_NOTIFIED, "DSP0000000000001"),
        ("REQUEST_FOR_INFORMATION", DISPUTE_NOTIFIED, "DSP0000000000001"),
        ("CHARGEBACK", DISPUTE_CHARGEBACK, "DSP0000000000001"),
        ("CHARGEBACK_REVERSED", DISPUTE_REVERSED, "DSP0000000000001"),
        ("SECOND_CHARGEBACK", DISPUTE_CHARGEBACK, "DSP0000000000001:2"),
        ("PREARBITRATION_WON", DISPUTE_REVERSED, "DSP0000000000001:2"),
        ("PREARBITRATION_LOST", DISPUTE_LOST, "DSP0000000000001:2"),
    ],
)
def test_dispute_notifications_are_disputes_of_the_original_payment(
    event_code, action, dispute_reference
):
    [event] = parse(
        item(
            event_code,
            psp="DSP0000000000001",
            originalReference="8815161318854998",
            amount={"currency": "EUR", "value": 750},
            reason="Other Fraud-Card Absent Environment",
            additionalData={
                "chargebackReasonCode": "10.4",
                "defensePeriodEndsAt": "2026-02-01T12:00:00+01:00",
            },
        )
    )
    assert (event.subject, event.reference, event.provider_reference) == (
        DISPUTE,
        "dep_abc",
        "8815161318854998",
    )
    assert event.dedup_key == f"DSP0000000000001:{event_code}:true"
    dispute = event.dispute
    assert (dispute.action, dispute.dispute_reference) == (action, dispute_reference)
    assert (dispute.amount, dispute.currency, dispute.reason_code) == (
        Decimal("7.50"),
        "EUR",
        "10.4",
    )
    assert dispute.due_by.isoformat() == "2026-02-01T12:00:00+01:00"


def test_events_we_do_not_act_on_and_other_merchant_accounts_yield_nothing():
    assert parse(item("REPORT_AVAILABLE"), item("RECURRING_CONTRACT")) == []
    assert parse(item(merchantAccountCode="AnotherMerchantECOM")) == []


@pytest.mark.parametrize(
    "bad",
    [
        item(success="maybe"),
        item(amount={"currency": "XXX", "value": 100}),
        item("CHARGEBACK", amount={"value": 100}),
        item(pspReference=""),
    ],
)
def test_a_verified_item_we_cannot_read_is_malformed(bad):
    adapter = connector()
    # Signed with our helper: the SDK's cannot sign an amount without a currency.
    body = delivery({**bad, "additionalData": {"hmacSignature": item_signature(bad, KEY)}})
    with pytest.raises(MalformedWebhook):
        adapter.parse_webhook(body=body, headers={})


def test_the_ack_is_adyens_accepted():
    ack = connector().webhook_ack()
    assert (ack.status, ack.body) == (200, b"[accepted]")


# --- through the HTTP endpoint: refused, nothing moved ---------------------------------------


def only_the_adyen_sandbox(monkeypatch):
    """Set up the sandbox providers through the shared code, Adyen's alone: the other
    protocols are not this file's subject (and setting them up costs time)."""
    from payments.services import setup

    adyen = [entry for entry in setup.SANDBOX_PROVIDERS if entry[3] == "adyen"]
    monkeypatch.setattr(setup, "SANDBOX_PROVIDERS", adyen)


@pytest.fixture
def adyen_provider(monkeypatch):
    only_the_adyen_sandbox(monkeypatch)
    [provider] = ensure_sandbox_providers(base_url="http://testserver")
    return provider


@pytest.fixture
def pending_deposit(adyen_provider):
    from datetime import timedelta

    from django.utils import timezone

    player = make_player()
    return Deposit.objects.create(
        reference="dep_adyen_pending",
        player=player,
        provider=adyen_provider,
        method=adyen_provider.methods.get(),
        amount=Decimal("10.00"),
        currency_id="EUR",
        idempotency_key="k1",
        request_hash="h",
        expires_at=timezone.now() + timedelta(minutes=30),
    )


def post(provider, body, *, authorization=None, content_type="application/json"):
    if authorization is None:
        options = provider.options
        authorization = basic(options["webhook_username"], options["webhook_password"])
    return Client().post(
        f"/api/v1/payments/webhooks/{provider.code}",
        data=body,
        content_type=content_type,
        HTTP_AUTHORIZATION=authorization,
    )


def authorisation_for(provider, deposit, **changes):
    return {
        "amount": {"currency": "EUR", "value": 1000},
        "eventCode": "AUTHORISATION",
        "merchantAccountCode": provider.merchant_id,
        "merchantReference": deposit.reference,
        "pspReference": "8815161318854998",
        "success": "true",
        **changes,
    }


def assert_nothing_moved(deposit):
    deposit.refresh_from_db()
    assert deposit.status == Deposit.Status.CREATED
    assert not JournalEntry.objects.exists()
    assert not WebhookEvent.objects.filter(is_signature_valid=True).exists()


def test_a_correctly_signed_delivery_is_stored_and_answered_accepted(
    adyen_provider, pending_deposit
):
    body = delivery(
        signed(authorisation_for(adyen_provider, pending_deposit), adyen_provider.webhook_secret)
    )
    response = post(adyen_provider, body)
    assert (response.status_code, response.content) == (200, b"[accepted]")
    event = WebhookEvent.objects.get()
    assert event.is_signature_valid and event.outcome == WebhookEvent.Outcome.PENDING


def test_tampered_wrong_key_unsigned_and_malformed_deliveries_are_refused_with_nothing_moved(
    adyen_provider, pending_deposit
):
    secret = adyen_provider.webhook_secret
    good = signed(authorisation_for(adyen_provider, pending_deposit), secret)
    tampered = copy.deepcopy(good)
    tampered["amount"]["value"] = 100_000
    wrong_key = signed(authorisation_for(adyen_provider, pending_deposit), "AB" * 32)
    unsigned = authorisation_for(adyen_provider, pending_deposit)
    non_ascii = {
        **unsigned,
        "additionalData": {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0ä"},
    }
    refused = [
        delivery(tampered),
        delivery(wrong_key),
        delivery(unsigned),
        delivery(non_ascii),
        delivery(good, tampered),
        b'{"live": "false"}',
        b'{"notificationItems": [{"NotificationRequestItem": "x"}]}',
        b"{not json",
    ]
    for body in refused:
        response = post(adyen_provider, body)
        assert response.status_code == 401, body
        assert response.json()["error"]["code"] == "invalid_signature"
    for authorization in ("", basic("adyen-sandbox", "wrong"), "Basic ünicode"):
        response = post(adyen_provider, delivery(good), authorization=authorization)
        assert response.status_code == 401
    assert post(adyen_provider, delivery(good) + b"\x00").status_code == 400
    assert post(adyen_provider, b"\xff" + delivery(good)).status_code == 400
    assert post(adyen_provider, delivery(good), content_type="text/plain").status_code == 415
    assert_nothing_moved(pending_deposit)
    assert WebhookEvent.objects.filter(is_signature_valid=False).count() == len(refused) + 3
