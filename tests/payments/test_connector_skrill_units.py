"""Skrill connector and sandbox pieces that need no server: the signature rule, what verify
and parse make of any body, the decline table, currency conversion. Helpers and the documented
signature rule come from test_connector_skrill.py."""

from decimal import Decimal

import pytest

from payments.models import PaymentProvider
from payments.providers import adapter_for
from payments.providers.base import FAILED, PENDING, SUCCEEDED, InvalidSignature, MalformedWebhook
from payments.providers.skrill import SkrillConnector, form_fields, signed_string
from payments.sandbox import core
from payments.sandbox import skrill as sandbox_skrill
from payments.sandbox.models import SandboxPayment
from tests.payments.test_connector_skrill import (
    FORM,
    documented_signature,
    md5_hex,
    status_callback,
)


@pytest.fixture
def provider():
    return PaymentProvider(
        code="skrill-unit",
        kind="ewallet",
        protocol="skrill",
        api_base_url="https://www.skrill.com/app/",
        api_key="mqipass123",
        webhook_secret="secretword",
        merchant_id="123456789",
        options={
            "merchant_email": "merchant@casino.test",
            "checkout_base_url": "https://pay.skrill.com/",
            "sha2sig_enabled": True,
        },
    )


def test_checkout_base_url_is_apart_from_the_api_base_and_may_be_relative(provider):
    assert adapter_for(provider).checkout_base_url == "https://pay.skrill.com/"
    provider.options = {**provider.options, "checkout_base_url": "pay/"}
    provider.api_base_url = "http://sandbox.test/api/v1/sandbox/skrill/w/"
    assert adapter_for(provider).checkout_base_url == (
        "http://sandbox.test/api/v1/sandbox/skrill/w/pay/"
    )
    del provider.options["checkout_base_url"]
    assert adapter_for(provider).checkout_base_url == "https://pay.skrill.com/"


def test_signed_string_is_the_documented_concatenation(provider):
    provider = provider
    fields = {
        "merchant_id": "299202295",
        "transaction_id": "frn123merid",
        "mb_amount": "20.45",
        "mb_currency": "GBP",
        "status": "2",
    }
    word = md5_hex(provider.webhook_secret).upper()
    assert signed_string(fields, provider.webhook_secret) == f"299202295frn123merid{word}20.45GBP2"


def test_verify_webhook_raises_only_invalid_signature_whatever_it_gets(provider):
    connector = adapter_for(provider)
    for body in [
        b"",
        b"\xff",
        b"a=%ZZ&b",
        b"&&&",
        b"md5sig=\xe2\x82\xac",
        b"=" * 5000,
        b"a=1" * 300,
    ]:
        with pytest.raises(InvalidSignature):
            connector.verify_webhook(body=body, headers={})
    connector.webhook_secret = ""
    body = status_callback(provider, "dep_x", secret="").encode()
    with pytest.raises(InvalidSignature, match="no secret word"):
        connector.verify_webhook(body=body, headers={})


def test_parse_reports_statuses_that_move_no_money_as_they_are(provider):
    connector = adapter_for(provider)

    def parse(**fields):
        [event] = connector.parse_webhook(
            body=status_callback(provider, "dep_abc", **fields).encode(), headers={}
        )
        return event

    failed = parse(status="-2", failed_reason_code="05")
    assert (failed.result.status, failed.result.decline_code, failed.result.decline_kind) == (
        FAILED,
        "05",
        "soft",
    )
    assert parse(status="-2", failed_reason_code="28").result.decline_kind == "hard"
    assert parse(status="-2").result.decline_kind == "hard"  # codes not enabled at Skrill
    assert parse(status="-1").result.status == "cancelled"
    pending = parse(status="0")
    assert (pending.result.status, pending.dedup_key) == (PENDING, "dep_abc:0")
    unknown = parse(status="7")
    assert unknown.result.status == PENDING and unknown.event_type == "status 7 (undocumented)"
    # Nothing unsigned names the payment, and the unsigned Skrill id is not kept.
    assert (failed.reference, failed.provider_reference, failed.result.provider_reference) == (
        "dep_abc",
        "",
        "",
    )
    with pytest.raises(MalformedWebhook):
        connector.parse_webhook(body=b"status=2&transaction_id=dep_abc", headers={})
    with pytest.raises(MalformedWebhook):
        parse(mb_amount="1e3")


def test_decline_codes_follow_skrills_failed_reason_table():
    kind = SkrillConnector.decline_kind.__get__(SkrillConnector.__new__(SkrillConnector))
    soft = ["01", "04", "05", "07", "10", "11", "31", "32", "44", "51", "67", "68", "70", "98"]
    hard = ["02", "03", "06", "08", "09", "12", "13", "15", "19", "20", "22", "24", "27", "28"]
    hard += ["30", "34", "35", "37", "38", "42", "45", "58", "63", "64", "69", "80", "99", "123"]
    assert {code: kind(code) for code in soft} == dict.fromkeys(soft, "soft")
    assert {code: kind(code) for code in hard} == dict.fromkeys(hard, "hard")
    assert kind("BALANCE_NOT_ENOUGH") == "soft" and kind("DISALLOWED_RECIPIENT") == "hard"


def test_amount_in_the_payment_currency_when_skrill_settled_into_another(provider):
    connector = adapter_for(provider)
    record = {
        "merchant_id": "1",
        "transaction_id": "dep_abc",
        "mb_transaction_id": "42",
        "mb_amount": "34.50",
        "mb_currency": "EUR",
        "amount": "30.00",
        "currency": "GBP",
        "status": "2",
        "pay_from_email": "p@example.com",
    }
    result = connector._payment_result(record)
    assert (result.status, result.amount_received, result.provider_reference) == (
        SUCCEEDED,
        Decimal("30.00"),
        "42",
    )
    same = connector._payment_result({**record, "currency": "EUR", "amount": "34.50"})
    assert same.amount_received == Decimal("34.50")


@pytest.mark.django_db
def test_the_sandboxs_callbacks_verify_by_the_documented_rule_and_with_the_connector(provider):
    connector = adapter_for(provider)
    payment = SandboxPayment(
        provider_code=provider.code,
        kind=SandboxPayment.Kind.PAYMENT,
        sandbox_id="qc_1",
        merchant_reference="dep_abc",
        amount=Decimal("30.00"),
        amount_paid=Decimal("30.00"),
        currency="EUR",
        status=core.PAID,
        notify_url="https://casino.test/api/v1/payments/webhooks/skrill",
        data={"mb_transaction_id": "2500000001", "customer": "player-1@example.com"},
    )
    for outcome in [core.PAID, core.PENDING, core.CANCELLED, core.EXPIRED, core.DECLINED_SOFT,
                    core.DECLINED_HARD, core.DISPUTED]:  # fmt: skip
        [(body, headers)] = sandbox_skrill.webhooks(
            payment, outcome, provider=provider, signed_right=True
        )
        assert headers == {"Content-Type": FORM}
        fields = form_fields(body)
        assert fields["md5sig"] == documented_signature(fields, provider.webhook_secret)
        assert fields["sha2sig"] == documented_signature(fields, provider.webhook_secret, "sha256")
        connector.verify_webhook(body=body, headers={})
        [(wrong, _)] = sandbox_skrill.webhooks(
            payment, outcome, provider=provider, signed_right=False
        )
        with pytest.raises(InvalidSignature):
            connector.verify_webhook(body=wrong, headers={})
    assert (
        sandbox_skrill.webhooks(payment, core.DISPUTE_WON, provider=provider, signed_right=True)
        == []
    )


def test_quick_checkout_cannot_be_cancelled_by_the_merchant(provider):
    connector = adapter_for(provider)
    assert connector.supports_cancel is False
    with pytest.raises(NotImplementedError):
        connector.cancel_payment(deposit=None)
