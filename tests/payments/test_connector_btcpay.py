"""BTCPay Server Greenfield: the connector against the sandbox store over real HTTP, with the
real worker. BTCPay has no official Python SDK, so webhooks are signed here by the documented
rule, written out independently of the code under test: `BTCPay-Sig: sha256=` + lower-case
hex HMAC-SHA256 keyed with the UTF-8 secret over the raw body (Greenfield webhook docs;
BTCPay's own WebhooksTests checks it the same way)."""

import hashlib
import hmac
import json
import secrets
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest

from payments import services
from payments.models import (
    Deposit,
    PaymentProvider,
    ProviderEventKey,
    WebhookEvent,
    Withdrawal,
)
from payments.providers import adapter_for
from payments.providers.base import (
    CANCELLED,
    EXPIRED,
    FAILED,
    PENDING,
    SUCCEEDED,
    InvalidSignature,
    MalformedWebhook,
    ProviderUnavailable,
)
from payments.sandbox import btcpay as sandbox_btcpay
from payments.sandbox import core
from payments.sandbox.models import SandboxPayment
from tests.payments.factories import (
    cash,
    fund,
    held,
    key,
    make_player,
    player_client,
    wait_for,
    without_minimal_play_rule,
)
from wallets import selectors

pytestmark = pytest.mark.django_db(transaction=True)

WEBHOOK = "/api/v1/payments/webhooks/sandbox-crypto"
BTC_ADDRESS = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"


@pytest.fixture
def only_btcpay(monkeypatch):
    """Set up the crypto provider alone: the other protocols are not this file's subject."""
    from payments.services import setup

    monkeypatch.setattr(
        setup, "SANDBOX_PROVIDERS", [p for p in setup.SANDBOX_PROVIDERS if p[3] == "btcpay"]
    )


@pytest.fixture
def provider(only_btcpay, sandbox):
    return sandbox["btcpay"]


@pytest.fixture
def offline():
    """A BTCPay provider that no test reaches over HTTP: for what needs no store."""
    return PaymentProvider(
        code="offline-btcpay",
        kind="crypto",
        protocol="btcpay",
        api_base_url="http://127.0.0.1:9/",
        **sandbox_btcpay.credentials(),
    )


# --- helpers ----------------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def start_deposit(player, amount, method="btc", currency="BTC"):
    response = player_client(player).post(
        "/api/v1/deposits",
        {"method": method, "amount": amount, "currency": currency},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 201, response.json()
    return response.json()


def deposit_in(reference, status, timeout=15):
    return wait_for(
        lambda: Deposit.objects.filter(reference=reference, status=status).first(),
        timeout=timeout,
        what=f"deposit {reference} to be {status}",
    )


def invoice_of(reference) -> SandboxPayment:
    return SandboxPayment.objects.get(kind="payment", merchant_reference=reference)


def chain_pays(invoice: SandboxPayment, amount: Decimal, **data):
    """The chain, not the checkout: the invoice is paid and no webhook is sent, so the test
    decides which deliveries arrive."""
    invoice.status = core.PAID
    invoice.amount_paid = amount
    invoice.data = {**invoice.data, **data}
    invoice.save()


def btcpay_event(provider, event_type, invoice_id, order_id, **fields) -> dict:
    """An invoice event as BTCPay's WebhookInvoiceEvent serialises it: ids only."""
    delivery = secrets.token_hex(11)
    return {
        "deliveryId": delivery,
        "webhookId": "Hd2Y7qZAdhpWsPk3QUyW3j",
        "originalDeliveryId": delivery,
        "isRedelivery": False,
        "type": event_type,
        "timestamp": int(time.time()),
        "storeId": provider.merchant_id,
        "invoiceId": invoice_id,
        "metadata": {"orderId": order_id},
        **fields,
    }


def post_webhook(live_server, body: bytes, signature=None, content_type="application/json"):
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["BTCPay-Sig"] = signature
    return httpx.post(live_server.url + WEBHOOK, content=body, headers=headers, timeout=10)


def processed(count, reference=None, timeout=15):
    def done():
        rows = WebhookEvent.objects.filter(processed_at__isnull=False)
        if reference:
            rows = rows.filter(payment_reference=reference)
        return list(rows.order_by("pk")) if rows.count() >= count else None

    return wait_for(done, timeout=timeout, what=f"{count} processed webhooks")


def run_janitor():
    return services.poll_stuck_payments(stuck_after=timedelta(0))


def greenfield(provider, method, path, **kwargs):
    return httpx.request(
        method,
        provider.api_base_url + path,
        headers={"Authorization": f"token {provider.api_key}"},
        timeout=10,
        **kwargs,
    )


# --- webhooks: signed the documented way, ids only ----------------------------------------------


def test_a_real_invoice_settled_with_ids_only_credits_what_the_api_says_was_paid(
    provider, live_server
):
    player = make_player()
    body = start_deposit(player, "0.00200000")
    invoice = invoice_of(body["reference"])
    chain_pays(invoice, Decimal("0.00200000"))
    event = btcpay_event(
        provider,
        "InvoiceSettled",
        invoice.sandbox_id,
        body["reference"],
        manuallyMarked=False,
        overPaid=False,
    )
    raw = json.dumps(event, indent=2).encode()
    assert b"amount" not in raw.lower() and b"confirmation" not in raw.lower()

    response = post_webhook(live_server, raw, sign(provider.webhook_secret, raw))

    assert response.status_code == 200
    deposit = deposit_in(body["reference"], "succeeded")
    assert deposit.amount_received == Decimal("0.00200000")
    assert deposit.provider_reference == invoice.sandbox_id
    assert cash(player, "BTC") == Decimal("0.00200000")
    [stored] = processed(1)
    assert stored.outcome == "applied"
    assert stored.event_type == "InvoiceSettled"
    assert ProviderEventKey.objects.get().key == f"btcpay:{event['deliveryId']}"
    assert selectors.ledger_problems() == []


def test_a_redelivery_of_an_applied_event_changes_nothing(provider, live_server):
    player = make_player()
    body = start_deposit(player, "0.00200000")
    invoice = invoice_of(body["reference"])
    chain_pays(invoice, Decimal("0.00200000"))
    first = btcpay_event(provider, "InvoiceSettled", invoice.sandbox_id, body["reference"])
    raw = json.dumps(first).encode()
    assert post_webhook(live_server, raw, sign(provider.webhook_secret, raw)).status_code == 200
    deposit_in(body["reference"], "succeeded")
    # BTCPay's redelivery: a new deliveryId, the first one kept in originalDeliveryId.
    again = {**first, "deliveryId": secrets.token_hex(11), "isRedelivery": True}
    raw_again = json.dumps(again).encode()
    assert (
        post_webhook(live_server, raw_again, sign(provider.webhook_secret, raw_again)).status_code
        == 200
    )
    # And a byte-identical replay of the first delivery.
    assert post_webhook(live_server, raw, sign(provider.webhook_secret, raw)).status_code == 200

    events = processed(3)
    assert [e.outcome for e in events] == ["applied", "no_change", "no_change"]
    assert ProviderEventKey.objects.count() == 1
    assert cash(player, "BTC") == Decimal("0.00200000")


def test_deliveries_not_signed_with_the_store_secret_are_refused_and_move_nothing(
    provider, live_server
):
    player = make_player()
    body = start_deposit(player, "0.00200000")
    invoice = invoice_of(body["reference"])
    chain_pays(invoice, Decimal("0.00200000"))
    raw = json.dumps(
        btcpay_event(provider, "InvoiceSettled", invoice.sandbox_id, body["reference"])
    ).encode()
    good = sign(provider.webhook_secret, raw)
    wrong_secret = sandbox_btcpay.base58(secrets.token_bytes(16))
    variants = {
        "tampered": (raw.replace(b"InvoiceSettled", b"InvoiceSettleD"), good),
        "wrong key": (raw, sign(wrong_secret, raw)),
        "unsigned": (raw, None),
        "non-ASCII": (raw, ("sha256=" + "é" * 64).encode("utf-8")),
        "no scheme": (raw, good.removeprefix("sha256=")),
        "sha1 scheme": (raw, "sha1=" + good.removeprefix("sha256=")),
        "short hex": (raw, good[:-2]),
        "two values": (raw, f"{good}, {good}"),
        "empty": (raw, ""),
    }
    for variant, (sent_body, signature) in variants.items():
        response = post_webhook(live_server, sent_body, signature)
        assert response.status_code in (400, 401), variant
        assert response.json()["error"]["code"] in ("invalid_signature", "webhook_refused")

    # Kept for the record (first KB), never processed.
    assert not WebhookEvent.objects.exclude(outcome="rejected").exists()
    assert not WebhookEvent.objects.filter(is_signature_valid=True).exists()
    assert not ProviderEventKey.objects.exists()
    assert Deposit.objects.get(reference=body["reference"]).status == "pending"
    assert cash(player, "BTC") == Decimal(0)
    # The same delivery signed right goes through: the refusals were about the signature.
    assert post_webhook(live_server, raw, good).status_code == 200
    deposit_in(body["reference"], "succeeded")


@pytest.mark.django_db
def test_verify_webhook_raises_only_invalid_signature_whatever_it_is_given(offline):
    adapter = adapter_for(offline)
    rng = secrets.SystemRandom()
    samples = [
        {},
        {"btcpay-sig": "sha256=" + "0" * 64},
        {"btcpay-sig": "sha256=" + "\udcff" * 64},
        {"btcpay-sig": "=" * 70},
        {"btcpay-sig": "sha256"},
        {"btcpay-sig": None},
        {"btcpay-sig": b"sha256=00"},
    ]
    for _ in range(200):
        length = rng.randrange(0, 80)
        samples.append({"btcpay-sig": "".join(chr(rng.randrange(0, 0x2FF)) for _ in range(length))})
    for headers in samples:
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        with pytest.raises(InvalidSignature):
            adapter.verify_webhook(body=body, headers=headers)
    raw = b'{"type":"InvoiceCreated"}'
    adapter.verify_webhook(body=raw, headers={"btcpay-sig": sign(offline.webhook_secret, raw)})
    # BTCPay writes lower-case hex; upper case is the same digest.
    upper = "sha256=" + sign(offline.webhook_secret, raw).removeprefix("sha256=").upper()
    adapter.verify_webhook(body=raw, headers={"btcpay-sig": upper})


def test_the_sandbox_signs_its_deliveries_the_documented_way_and_resends_as_redeliveries(
    provider,
):
    player = make_player()
    body = start_deposit(player, "0.00300000")
    invoice = invoice_of(body["reference"])
    chain_pays(invoice, Decimal("0.00300000"))

    first = sandbox_btcpay.webhooks(invoice, core.PAID, provider=provider, signed_right=True)
    again = sandbox_btcpay.webhooks(invoice, core.PAID, provider=provider, signed_right=True)
    wrong = sandbox_btcpay.webhooks(invoice, core.PAID, provider=provider, signed_right=False)

    types = [json.loads(raw)["type"] for raw, _ in first]
    assert types == [
        "InvoiceReceivedPayment",
        "InvoiceProcessing",
        "InvoicePaymentSettled",
        "InvoiceSettled",
    ]
    adapter = adapter_for(provider)
    for raw, headers in first + again:
        assert headers["BTCPay-Sig"] == sign(provider.webhook_secret, raw)
        assert headers["Content-Type"] == "application/json"
        adapter.verify_webhook(body=raw, headers={k.lower(): v for k, v in headers.items()})
    for raw, headers in wrong:
        with pytest.raises(InvalidSignature):
            adapter.verify_webhook(body=raw, headers={k.lower(): v for k, v in headers.items()})
    for (raw1, _), (raw2, _) in zip(first, again, strict=True):
        one, two = json.loads(raw1), json.loads(raw2)
        assert one["originalDeliveryId"] == one["deliveryId"] and not one["isRedelivery"]
        assert two["originalDeliveryId"] == one["deliveryId"] != two["deliveryId"]
        assert two["isRedelivery"] is True
        assert one["storeId"] == provider.merchant_id
        assert one["invoiceId"] == invoice.sandbox_id
        assert one["metadata"] == {"orderId": body["reference"]}
    settled = json.loads(first[-1][0])
    assert {"manuallyMarked", "overPaid"} <= settled.keys()
    assert "amount" not in settled and "confirmations" not in settled


def test_parse_webhook_reads_only_what_it_understands(provider):
    adapter = adapter_for(provider)
    other_store = btcpay_event(provider, "InvoiceSettled", "x", "y") | {"storeId": "another"}
    cases = [
        b"[]",
        b"not json",
        json.dumps({"type": "InvoiceSettled"}).encode(),
        json.dumps({"deliveryId": "d", "type": "InvoiceSettled"}).encode(),
        json.dumps(other_store).encode(),
        json.dumps(btcpay_event(provider, "InvoiceSettled", "NoSuchInvoice", "dep_x")).encode(),
    ]
    for raw in cases:
        with pytest.raises(MalformedWebhook):
            adapter.parse_webhook(body=raw, headers={})
    for kind in ("PaymentRequestUpdated", "SubscriberCreated", "InvoiceRefund"):
        raw = json.dumps(btcpay_event(provider, kind, "x", "y")).encode()
        assert adapter.parse_webhook(body=raw, headers={}) == []


# --- reading invoices: amounts, confirmations, late and partial payments -------------------------


def _invoice(status, additional="None", policy="LowMediumSpeed", currency="BTC", **extra):
    return {
        "id": "Inv1",
        "currency": currency,
        "status": status,
        "additionalStatus": additional,
        "checkout": {"speedPolicy": policy},
        "metadata": {"orderId": "dep_1"},
        **extra,
    }


def _method(*payments, currency="BTC", rate="1"):
    return {"currency": currency, "rate": rate, "payments": list(payments)}


def _payment(value, status="Settled", fee="0"):
    return {"id": "tx-0", "value": value, "fee": fee, "status": status}


@pytest.mark.django_db
def test_invoice_states_map_to_our_results(offline):
    adapter = adapter_for(offline)
    paid = [_method(_payment("0.00200000"))]
    assert adapter.invoice_result(_invoice("New"), None).status == PENDING
    assert adapter.invoice_result(_invoice("New", "PaidPartial"), None).status == PENDING
    assert adapter.invoice_result(_invoice("Processing"), None).status == PENDING
    settled = adapter.invoice_result(_invoice("Settled"), paid)
    assert (settled.status, settled.amount_received, settled.is_late) == (
        SUCCEEDED,
        Decimal("0.00200000"),
        False,
    )
    late = adapter.invoice_result(_invoice("Expired", "PaidLate"), paid)
    assert (late.status, late.is_late) == (SUCCEEDED, True)
    partial = adapter.invoice_result(
        _invoice("Expired", "PaidPartial"), [_method(_payment("0.00100000"))]
    )
    assert (partial.status, partial.amount_received) == (SUCCEEDED, Decimal("0.00100000"))
    assert adapter.invoice_result(_invoice("Expired"), [_method()]).status == EXPIRED
    invalid = adapter.invoice_result(_invoice("Invalid"), None)
    assert (invalid.status, invalid.decline_code, invalid.decline_kind) == (
        FAILED,
        "invoice-invalid",
        "hard",
    )
    assert adapter.invoice_result(_invoice("Invalid", "Marked"), None).status == CANCELLED
    assert adapter.invoice_result(_invoice("Refunding"), paid).status == PENDING
    # Marked settled by hand with nothing settled on chain: nothing to credit.
    assert adapter.invoice_result(_invoice("Settled", "Marked"), [_method()]).status == PENDING


@pytest.mark.django_db
def test_only_settled_payments_at_the_required_depth_are_credited(offline):
    adapter = adapter_for(offline)  # BTC needs 2 confirmations (settings)
    confirming = [_method(_payment("0.002", "Processing"))]
    assert adapter.invoice_result(_invoice("Expired", "PaidLate"), confirming).status == PENDING
    # A Settled invoice whose policy waits for less than we require is not credited.
    shallow = _invoice("Settled", policy="MediumSpeed")
    assert adapter.invoice_result(shallow, [_method(_payment("0.002"))]).status == PENDING
    # Replaced or double-spent payments never count; net of the payment method fee.
    mixed = [_method(_payment("0.003", fee="0.0001"), _payment("5", "Invalid"))]
    assert adapter.invoice_result(_invoice("Settled"), mixed).amount_received == Decimal(
        "0.00290000"
    )


@pytest.mark.django_db
def test_amount_received_is_converted_to_the_invoice_currency_rounding_down(offline):
    adapter = adapter_for(offline)
    result = adapter.invoice_result(
        _invoice("Settled", currency="EUR"),
        [_method(_payment("0.00123457"), currency="BTC", rate="50000.00")],
    )
    # 0.00123457 BTC at 50,000 = 61.7285 EUR: the fraction of a cent that did not arrive is
    # not credited.
    assert result.amount_received == Decimal("61.72")


@pytest.mark.django_db
def test_an_invoice_in_another_currency_than_the_deposit_is_refused(offline):
    with pytest.raises(MalformedWebhook):
        adapter_for(offline).invoice_result(_invoice("New"), None, currency="ETH")


# --- end to end through the sandbox -------------------------------------------------------------


@pytest.mark.parametrize(
    "action,credited,late",
    [
        ("exact", "0.00200000", False),
        ("less", "0.00100000", False),
        ("more", "0.00240000", False),
        ("late", "0.00200000", True),
    ],
)
def test_a_deposit_paid_on_the_checkout_is_credited_with_what_arrived(
    provider, action, credited, late
):
    player = make_player()
    body = start_deposit(player, "0.00200000")
    assert body["status"] == "pending"
    assert body["instructions"]["address"].startswith("bc1q")
    assert body["instructions"]["payment_method"] == "BTC-CHAIN"
    invoice_id = Deposit.objects.get(reference=body["reference"]).provider_reference
    assert body["redirect_url"].endswith(f"/i/{invoice_id}")
    page = httpx.get(body["redirect_url"])
    assert "Pay exact" in page.text and body["instructions"]["address"] in page.text

    httpx.post(body["redirect_url"], data={"action": action})

    deposit = deposit_in(body["reference"], "succeeded")
    assert deposit.amount_received == Decimal(credited)
    assert deposit.is_paid_late is late
    assert cash(player, "BTC") == Decimal(credited)
    if late:
        statuses = list(deposit.transitions.values_list("to_status", flat=True))
        assert statuses[-2:] == ["expired", "succeeded"]
    assert selectors.ledger_problems() == []


def test_a_deposit_left_to_expire_expires(provider):
    player = make_player()
    body = start_deposit(player, "0.00300000")
    httpx.post(body["redirect_url"], data={"action": "expire"})
    deposit_in(body["reference"], "expired")
    assert cash(player, "BTC") == Decimal(0)


@pytest.mark.parametrize(
    "amount,code,kind",
    [
        ("0.00200005", "payment-method-or-rate-unavailable", "soft"),
        ("0.00200006", "no-wallet", "hard"),
    ],
)
def test_invoice_creation_refusals_fail_the_deposit_with_their_decline(
    provider, amount, code, kind
):
    player = make_player()
    body = start_deposit(player, amount)
    assert (body["status"], body["decline_code"], body["decline_kind"]) == ("failed", code, kind)
    assert not SandboxPayment.objects.exists()  # BTCPay made no invoice


def test_confirmations_set_the_speed_policy_and_an_unreachable_depth_creates_nothing(provider):
    provider.options = {"confirmations": {"BTC": 6}}
    provider.save()
    player = make_player()
    body = start_deposit(player, "0.00200000")
    assert invoice_of(body["reference"]).data["speed_policy"] == "LowSpeed"

    provider.options = {"confirmations": {"BTC": 7}}
    provider.save()
    refused = start_deposit(player, "0.00300000")
    assert (refused["status"], refused["decline_code"], refused["decline_kind"]) == (
        "failed",
        "confirmations-unattainable",
        "hard",
    )
    assert SandboxPayment.objects.count() == 1


def test_a_payment_still_confirming_is_credited_only_once_it_is_deep_enough(provider):
    player = make_player()
    body = start_deposit(player, "0.00200000")  # BTC: 2 confirmations → LowMediumSpeed
    invoice = invoice_of(body["reference"])
    chain_pays(invoice, Decimal("0.00200000"), confirmations=1)
    adapter = adapter_for(provider)
    deposit = Deposit.objects.get(reference=body["reference"])
    assert adapter.fetch_payment_status(deposit=deposit).status == PENDING
    assert greenfield(provider, "GET", f"api/v1/invoices/{invoice.sandbox_id}").json()[
        "status"
    ] == ("Processing")

    invoice.data = {**invoice.data, "confirmations": 2}
    invoice.save()
    core.schedule_webhooks(invoice, core.PAID)  # BTCPay fires its events at the second block

    deposit = deposit_in(body["reference"], "succeeded")
    assert cash(player, "BTC") == Decimal("0.00200000")


def test_a_timed_out_invoice_is_found_by_order_id_and_credited_by_the_janitor(provider):
    player = make_player()
    body = start_deposit(player, "0.00200007")
    assert body["status"] == "pending"
    assert Deposit.objects.get(reference=body["reference"]).provider_reference == ""
    assert cash(player, "BTC") == Decimal(0)

    assert run_janitor()["deposits_polled"] == 1

    deposit = Deposit.objects.get(reference=body["reference"])
    assert deposit.status == "succeeded"
    assert deposit.transitions.last().source == "janitor"
    assert deposit.provider_reference == invoice_of(body["reference"]).sandbox_id
    assert cash(player, "BTC") == Decimal("0.00200007")
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("amount", ["0.00200008", "0.00200009", "0.00200010"])
def test_delayed_duplicated_or_out_of_order_deliveries_credit_once(provider, amount):
    player = make_player()
    body = start_deposit(player, amount)
    assert body["status"] == "pending"  # the answer says Processing

    deposit_in(body["reference"], "succeeded", timeout=20)
    wait_for(
        lambda: (
            not WebhookEvent.objects.filter(processed_at__isnull=True).exists()
            and WebhookEvent.objects.count() >= 4
        ),
        what="every delivery processed",
    )
    assert cash(player, "BTC") == Decimal(amount)
    assert (
        Deposit.objects.get(reference=body["reference"])
        .transitions.filter(to_status="succeeded")
        .count()
        == 1
    )
    keys = ProviderEventKey.objects.values_list("key", flat=True)
    assert len(keys) == len(set(keys))
    assert selectors.ledger_problems() == []


def test_a_delivery_signed_with_a_wrong_secret_is_refused_and_the_janitor_still_credits(
    provider,
):
    player = make_player()
    body = start_deposit(player, "0.00200011")
    wait_for(
        lambda: WebhookEvent.objects.filter(outcome="rejected").count() >= 4,
        what="the badly signed deliveries",
    )
    assert Deposit.objects.get(reference=body["reference"]).status == "pending"
    run_janitor()
    assert Deposit.objects.get(reference=body["reference"]).status == "succeeded"
    assert cash(player, "BTC") == Decimal("0.00200011")


@pytest.mark.parametrize("amount", ["0.00200012", "0.00200013"])
def test_no_chargebacks_on_a_chain_the_magic_dispute_amounts_credit_once(provider, amount):
    player = make_player()
    body = start_deposit(player, amount)
    deposit_in(body["reference"], "succeeded")
    wait_for(
        lambda: (
            WebhookEvent.objects.count() >= 4
            and not WebhookEvent.objects.filter(processed_at__isnull=True).exists()
        ),
        what="every delivery processed",
    )
    deposit = Deposit.objects.get(reference=body["reference"])
    assert not deposit.chargebacks.exists()
    assert deposit.transitions.filter(to_status="succeeded").count() == 1
    assert cash(player, "BTC") == Decimal(amount)


def test_cancel_marks_an_unpaid_invoice_invalid_at_the_store(provider):
    player = make_player()
    body = start_deposit(player, "0.00200000")
    deposit = Deposit.objects.get(reference=body["reference"])

    result = adapter_for(provider).cancel_payment(deposit=deposit)

    assert result.status == CANCELLED
    shown = greenfield(provider, "GET", f"api/v1/invoices/{deposit.provider_reference}").json()
    assert (shown["status"], shown["additionalStatus"]) == ("Invalid", "Marked")
    # The store's InvoiceInvalid webhook then cancels the deposit.
    deposit_in(body["reference"], "cancelled")
    # The checkout can no longer take a payment.
    httpx.post(body["redirect_url"], data={"action": "exact"})
    assert invoice_of(body["reference"]).amount_paid is None


def test_cancel_leaves_an_expired_invoice_open_for_a_late_payment(provider):
    player = make_player()
    body = start_deposit(player, "0.00200000")
    invoice = invoice_of(body["reference"])
    invoice.status = core.EXPIRED
    invoice.save()
    deposit = Deposit.objects.get(reference=body["reference"])

    assert adapter_for(provider).cancel_payment(deposit=deposit).status == EXPIRED
    assert greenfield(provider, "GET", f"api/v1/invoices/{invoice.sandbox_id}").json()[
        "status"
    ] == ("Expired")


def test_the_connector_sends_what_greenfield_documents(provider):
    player = make_player()
    body = start_deposit(player, "0.00200000")
    invoice = invoice_of(body["reference"])
    # What the store received and kept of the request.
    assert invoice.amount == Decimal("0.00200000") and invoice.currency == "BTC"
    assert invoice.data["metadata"] == {"orderId": body["reference"]}
    assert invoice.data["speed_policy"] == "LowMediumSpeed"
    assert invoice.data["payment_method"] == "BTC-CHAIN"
    expected_minutes = -(-provider.deposit_timeout_seconds // 60)
    assert invoice.data["expiration_time"] - invoice.data["created_time"] == expected_minutes * 60
    shown = greenfield(
        provider, "GET", f"api/v1/stores/{provider.merchant_id}/invoices/{invoice.sandbox_id}"
    ).json()
    assert shown["checkout"]["redirectURL"]
    assert shown["metadata"]["orderId"] == body["reference"]


def test_the_store_refuses_wrong_credentials_as_greenfield_does(provider):
    store = f"api/v1/stores/{provider.merchant_id}/invoices"
    no_key = httpx.get(provider.api_base_url + store)
    assert (no_key.status_code, no_key.json()["code"]) == (401, "unauthenticated")
    bad_key = httpx.get(provider.api_base_url + store, headers={"Authorization": "token 00"})
    assert (bad_key.status_code, bad_key.json()["code"]) == (401, "unauthenticated")
    bearer = httpx.get(
        provider.api_base_url + store, headers={"Authorization": f"Bearer {provider.api_key}"}
    )
    assert bearer.status_code == 401
    other = greenfield(provider, "GET", "api/v1/stores/AnotherStore/invoices")
    assert (other.status_code, other.json()["code"]) == (403, "missing-permission")
    assert other.json()["missingPermission"] == "btcpay.store.canviewinvoices"
    missing = greenfield(provider, "GET", "api/v1/invoices/NoSuchInvoice")
    assert (missing.status_code, missing.json()["code"]) == (404, "invoice-not-found")
    invalid = greenfield(provider, "POST", store, json={"amount": "-1", "currency": "XXX"})
    assert invalid.status_code == 422
    assert {e["path"] for e in invalid.json()} == {"amount", "currency"}
    not_json = greenfield(provider, "POST", store, content=b"\xff")
    assert not_json.status_code == 422


def test_a_key_the_store_refuses_means_the_call_did_nothing(provider):
    player = make_player()
    body = start_deposit(player, "0.00200000")
    deposit = Deposit.objects.get(reference=body["reference"])
    # The connector of an operator who pasted a wrong key (the sandbox keeps the right one).
    misconfigured = PaymentProvider.objects.get(pk=provider.pk)
    misconfigured.api_key = "0" * 40
    adapter = adapter_for(misconfigured)
    with pytest.raises(ProviderUnavailable):
        adapter.fetch_payment_status(deposit=deposit)
    with pytest.raises(ProviderUnavailable):
        adapter.cancel_payment(deposit=deposit)
    other_store = PaymentProvider.objects.get(pk=provider.pk)
    other_store.merchant_id = "AnotherStore"
    with pytest.raises(ProviderUnavailable):
        adapter_for(other_store).fetch_payment_status(deposit=deposit)
    assert invoice_of(body["reference"]).status == core.PENDING


# --- payouts -------------------------------------------------------------------------------------


def _crypto_withdrawal(amount):
    without_minimal_play_rule()
    player = make_player()
    fund(player, "0.05000000", "BTC")
    instrument = services.add_payout_instrument(
        player=player, kind="crypto", identifier=BTC_ADDRESS, network="bitcoin"
    )
    withdrawal = services.request_withdrawal(
        player=player, instrument=instrument, amount=amount, currency="BTC", idempotency_key=key()
    )
    return player, withdrawal


def withdrawal_in(reference, status, timeout=15):
    return wait_for(
        lambda: Withdrawal.objects.filter(reference=reference, status=status).first(),
        timeout=timeout,
        what=f"withdrawal {reference} to be {status}",
    )


def test_a_payout_goes_to_the_players_address_and_settles_on_the_webhook(provider):
    player, withdrawal = _crypto_withdrawal("0.00500000")
    paid = withdrawal_in(withdrawal.reference, "paid")
    payout = SandboxPayment.objects.get(kind="payout")
    assert paid.provider_reference == payout.sandbox_id
    assert payout.data["destination"] == BTC_ADDRESS
    assert payout.data["payout_method"] == "BTC-CHAIN"
    assert payout.data["metadata"]["orderId"] == withdrawal.reference
    assert payout.data["approved"] is True
    assert (cash(player, "BTC"), held(player, "BTC")) == (Decimal("0.04500000"), Decimal(0))
    assert selectors.ledger_problems() == []


def test_a_payout_cancelled_at_the_store_fails_and_releases_the_hold(provider):
    player, withdrawal = _crypto_withdrawal("0.00500005")
    failed = withdrawal_in(withdrawal.reference, "failed")
    assert (failed.decline_code, failed.decline_kind) == ("payout-cancelled", "hard")
    assert (cash(player, "BTC"), held(player, "BTC")) == (Decimal("0.05000000"), Decimal(0))


def test_a_payout_to_a_destination_the_store_refuses_fails_hard(provider):
    player, withdrawal = _crypto_withdrawal("0.00500006")
    failed = withdrawal_in(withdrawal.reference, "failed")
    assert (failed.decline_code, failed.decline_kind) == ("invalid-destination", "hard")
    assert not SandboxPayment.objects.filter(kind="payout").exists()
    assert cash(player, "BTC") == Decimal("0.05000000")


def test_a_timed_out_payout_is_found_by_its_reference_and_settled_by_the_janitor(provider):
    player, withdrawal = _crypto_withdrawal("0.00500007")
    # The store has the payout; its answer comes after our timeout, so we never learnt its id.
    wait_for(
        lambda: (
            SandboxPayment.objects.filter(kind="payout").exists()
            and Withdrawal.objects.get(pk=withdrawal.pk).status == "processing"
        ),
        what="the payout created at the store",
    )
    assert run_janitor()["payouts_polled"] == 1
    paid = Withdrawal.objects.get(pk=withdrawal.pk)
    assert paid.status == "paid"
    assert paid.provider_reference == SandboxPayment.objects.get(kind="payout").sandbox_id
    assert held(player, "BTC") == Decimal(0)


def test_crypto_deposits_cannot_be_refunded(provider):
    assert provider.supports_refunds is False
    with pytest.raises(NotImplementedError):
        adapter_for(provider).refund(refund=None, notify_url="")
