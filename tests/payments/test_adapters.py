"""Per adapter: the request it sends, and the webhooks it accepts or refuses. Webhooks are
produced by the sandbox's own signing code (written separately from the adapters)."""

import json
import time
from decimal import Decimal
from urllib.parse import parse_qs

import httpx
import pytest

from payments.instruments import instrument_fingerprint, normalise_iban
from payments.models import Deposit, PaymentProvider, PayoutInstrument, Withdrawal
from payments.providers import adapter_for
from payments.providers.base import (
    InvalidSignature,
    PayerInstrument,
    ProviderTimeout,
    ProviderUnavailable,
)
from payments.sandbox import core
from payments.sandbox.dialects import Card, Crypto, Ewallet, OpenBanking
from payments.sandbox.models import SandboxPayment
from wallets.models import Player

pytestmark = pytest.mark.django_db
SECRET = "whsec_test_secret"


def provider(kind, **options):
    return PaymentProvider(
        code=f"test-{kind}",
        kind=kind,
        api_base_url="https://psp.test/base/",
        api_key="sk_test_key",
        webhook_secret=SECRET,
        merchant_id="merchant-1",
        options=options,
    )


def deposit(amount="10.00", currency="EUR", reference="dep_abc"):
    return Deposit(
        reference=reference,
        player=Player(external_id="player-1"),
        amount=Decimal(amount),
        currency_id=currency,
    )


def sandbox_object(kind=SandboxPayment.Kind.PAYMENT, amount="10.00", currency="EUR", **data):
    return SandboxPayment(
        sandbox_id="obj_1",
        kind=kind,
        merchant_reference="dep_abc",
        amount=Decimal(amount),
        currency=currency,
        status=core.PENDING,
        data=data,
    )


@pytest.fixture
def http(monkeypatch):
    """Capture the adapter's requests and answer with `http.reply`."""

    class Recorder:
        requests: list[httpx.Request] = []
        reply = staticmethod(lambda request: httpx.Response(200, json={}))

    def client(self):
        return httpx.Client(
            base_url=self.provider.api_base_url,
            transport=httpx.MockTransport(
                lambda request: Recorder.requests.append(request) or Recorder.reply(request)
            ),
        )

    monkeypatch.setattr("payments.providers.base.PaymentAdapter._client", client)
    Recorder.requests = []
    return Recorder


# --- card -----------------------------------------------------------------------------------


def test_card_payment_request_is_json_with_the_api_key_and_our_reference_as_idempotency_key(http):
    http.reply = lambda r: httpx.Response(
        201,
        json={
            "id": "pay_1",
            "status": "requires_action",
            "next_action": {"redirect_url": "https://psp.test/3ds/pay_1"},
        },
    )
    result = adapter_for(provider("card")).start_payment(
        deposit=deposit(), notify_url="https://us/wh", return_url="https://casino/back"
    )
    [request] = http.requests
    assert (request.method, str(request.url)) == ("POST", "https://psp.test/base/v1/payments")
    assert request.headers["Authorization"] == "Bearer sk_test_key"
    assert request.headers["Idempotency-Key"] == "dep_abc"
    assert json.loads(request.content) == {
        "amount": "10.00",
        "currency": "EUR",
        "reference": "dep_abc",
        "customer": "player-1",
        "return_url": "https://casino/back",
        "notify_url": "https://us/wh",
    }
    assert (result.status, result.provider_reference) == ("pending", "pay_1")
    assert result.redirect_url == "https://psp.test/3ds/pay_1"


def test_card_declines_are_sorted_into_soft_and_hard(http):
    adapter = adapter_for(provider("card"))
    for code, kind in [("insufficient_funds", "soft"), ("stolen_card", "hard"), ("new", "hard")]:
        http.reply = lambda r, code=code: httpx.Response(
            402, json={"id": "pay_1", "status": "declined", "decline_code": code}
        )
        result = adapter.start_payment(deposit=deposit(), notify_url="https://u", return_url="")
        assert (result.status, result.decline_code, result.decline_kind) == ("failed", code, kind)


def test_a_server_error_leaves_the_outcome_unknown_and_a_refused_connection_does_not(http):
    adapter = adapter_for(provider("card"))
    http.reply = lambda r: httpx.Response(503, text="busy")
    with pytest.raises(ProviderTimeout):
        adapter.start_payment(deposit=deposit(), notify_url="https://u", return_url="")

    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    http.reply = refuse
    with pytest.raises(ProviderUnavailable):
        adapter.start_payment(deposit=deposit(), notify_url="https://u", return_url="")


def _card_webhook(outcome=core.PAID, secret=SECRET):
    return Card.webhook(sandbox_object(), outcome, secret)


def _lower(headers):
    return {k.lower(): v for k, v in headers.items()}


def test_card_webhook_signed_with_our_secret_is_accepted_and_parsed():
    adapter = adapter_for(provider("card"))
    body, headers = _card_webhook()
    adapter.verify_webhook(body=body, headers=_lower(headers))
    event = adapter.parse_webhook(body=body, headers=_lower(headers))
    assert (event.subject, event.reference, event.event_type) == (
        "deposit",
        "dep_abc",
        "payment.succeeded",
    )
    assert event.result.status == "succeeded"


@pytest.mark.parametrize("tamper", ["body", "secret", "missing", "expired", "future"])
def test_card_webhook_with_a_bad_signature_or_stale_timestamp_is_refused(tamper):
    adapter = adapter_for(provider("card"))
    body, headers = _card_webhook(secret="other" if tamper == "secret" else SECRET)
    headers = _lower(headers)
    if tamper == "body":
        body = body.replace(b"10.00", b"99.00")
    elif tamper == "missing":
        del headers["card-signature"]
    elif tamper in ("expired", "future"):
        shift = -301 if tamper == "expired" else 301
        timestamp = int(time.time()) + shift
        from payments.providers.card import sign

        headers["card-signature"] = sign(SECRET, body, timestamp)
    with pytest.raises(InvalidSignature):
        adapter.verify_webhook(body=body, headers=headers)


# --- e-wallet ---------------------------------------------------------------------------------


def test_ewallet_payment_request_is_form_encoded_and_returns_the_hosted_page(http):
    http.reply = lambda r: httpx.Response(200, text="sid=sid_123")
    result = adapter_for(provider("ewallet")).start_payment(
        deposit=deposit(), notify_url="https://us/wh", return_url="https://casino/back"
    )
    [request] = http.requests
    assert str(request.url) == "https://psp.test/base/payment"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert form == {
        "merchant_id": "merchant-1",
        "api_password": "sk_test_key",
        "transaction_id": "dep_abc",
        "customer": "player-1",
        "amount": "10.00",
        "currency": "EUR",
        "status_url": "https://us/wh",
        "return_url": "https://casino/back",
    }
    assert result.redirect_url == "https://psp.test/base/app?sid=sid_123"


def test_ewallet_status_callback_signature_covers_the_fixed_fields():
    adapter = adapter_for(provider("ewallet"))
    body, _ = Ewallet.webhook(sandbox_object(), core.PAID, SECRET, "merchant-1")
    adapter.verify_webhook(body=body, headers={})
    event = adapter.parse_webhook(body=body, headers={})
    assert (event.result.status, event.result.amount_received) == ("succeeded", Decimal("10.00"))
    for forged in (
        body.replace(b"mb_amount=10.00", b"mb_amount=90.00"),
        body.replace(b"status=2", b"status=0"),
    ):
        with pytest.raises(InvalidSignature):
            adapter.verify_webhook(body=forged, headers={})
    other_merchant, _ = Ewallet.webhook(sandbox_object(), core.PAID, SECRET, "merchant-2")
    with pytest.raises(InvalidSignature):
        adapter.verify_webhook(body=other_merchant, headers={})


def test_ewallet_failed_reason_codes_map_to_soft_and_hard():
    adapter = adapter_for(provider("ewallet"))
    for outcome, kind in [(core.DECLINED_SOFT, "soft"), (core.DECLINED_HARD, "hard")]:
        body, _ = Ewallet.webhook(sandbox_object(), outcome, SECRET, "merchant-1")
        result = adapter.parse_webhook(body=body, headers={}).result
        assert (result.status, result.decline_kind) == ("failed", kind)


# --- open banking -----------------------------------------------------------------------------


def test_open_banking_fetches_a_bearer_token_then_initiates_the_payment(http):
    def reply(request):
        if request.url.path.endswith("oauth/token"):
            return httpx.Response(200, json={"access_token": "tok_1", "expires_in": 300})
        return httpx.Response(
            201, json={"id": "obp_1", "status": "RCVD", "consent_url": "https://bank/consent"}
        )

    http.reply = reply
    adapter = adapter_for(provider("open_banking"))
    result = adapter.start_payment(
        deposit=deposit(reference="dep_ob"), notify_url="https://us/wh", return_url="https://c/"
    )
    token_request, payment_request = http.requests
    assert parse_qs(token_request.content.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": ["merchant-1"],
        "client_secret": ["sk_test_key"],
    }
    assert payment_request.headers["Authorization"] == "Bearer tok_1"
    sent = json.loads(payment_request.content)
    assert sent["amount"] == {"value": "10.00", "currency": "EUR"}
    assert sent["customer"] == "player-1"
    assert (result.status, result.redirect_url) == ("pending", "https://bank/consent")


@pytest.mark.parametrize(
    "iso,expected",
    [
        ("RCVD", "pending"),
        ("PDNG", "pending"),
        ("ACTC", "pending"),
        ("ACSP", "pending"),
        ("ACSC", "succeeded"),
        ("RJCT", "failed"),
        ("CANC", "cancelled"),
    ],
)
def test_open_banking_iso_20022_statuses_map_to_ours(iso, expected):
    from payments.providers.open_banking import ISO_STATUSES

    assert ISO_STATUSES[iso] == expected


def test_open_banking_webhook_verification_and_reason_codes():
    adapter = adapter_for(provider("open_banking"))
    body, headers = OpenBanking.webhook(sandbox_object(), core.DECLINED_SOFT, SECRET)
    headers = _lower(headers)
    adapter.verify_webhook(body=body, headers=headers)
    result = adapter.parse_webhook(body=body, headers=headers).result
    assert (result.status, result.decline_code, result.decline_kind) == ("failed", "AM04", "soft")
    with pytest.raises(InvalidSignature):
        adapter.verify_webhook(body=body.replace(b"AM04", b"AC04"), headers=headers)
    stale = {**headers, "ob-timestamp": str(int(time.time()) - 400)}
    with pytest.raises(InvalidSignature):
        adapter.verify_webhook(body=body, headers=stale)


# --- crypto -----------------------------------------------------------------------------------


def test_crypto_invoice_request_uses_the_store_and_token_auth(http):
    http.reply = lambda r: httpx.Response(
        200,
        json={
            "id": "inv_1",
            "status": "New",
            "checkoutLink": "https://pay/i/inv_1",
            "address": "bc1qaddr",
            "expirationTime": 1,
        },
    )
    result = adapter_for(provider("crypto")).start_payment(
        deposit=deposit("0.00100000", "BTC"), notify_url="https://us/wh", return_url="https://c/"
    )
    [request] = http.requests
    assert str(request.url) == "https://psp.test/base/api/v1/stores/merchant-1/invoices"
    assert request.headers["Authorization"] == "token sk_test_key"
    sent = json.loads(request.content)
    assert (sent["amount"], sent["currency"], sent["metadata"]) == (
        "0.00100000",
        "BTC",
        {"orderId": "dep_abc"},
    )
    assert result.instructions == {"address": "bc1qaddr", "expirationTime": 1}


def test_crypto_settled_counts_only_with_enough_confirmations():
    paid = sandbox_object(amount="0.00100000", currency="BTC")
    paid.amount_paid = Decimal("0.00100000")
    body, headers = Crypto.webhook(paid, core.PAID, SECRET)
    headers = _lower(headers)
    relaxed = adapter_for(provider("crypto"))
    relaxed.verify_webhook(body=body, headers=headers)
    assert relaxed.parse_webhook(body=body, headers=headers).result.status == "succeeded"
    strict = adapter_for(provider("crypto", confirmations={"BTC": 50}))
    assert strict.parse_webhook(body=body, headers=headers).result.status == "pending"


def test_crypto_webhook_signature_is_checked():
    body, headers = Crypto.webhook(sandbox_object(currency="BTC"), core.PAID, SECRET)
    adapter = adapter_for(provider("crypto"))
    with pytest.raises(InvalidSignature):
        adapter.verify_webhook(body=body + b" ", headers=_lower(headers))
    with pytest.raises(InvalidSignature):
        adapter.verify_webhook(body=body, headers={})


def test_crypto_payout_goes_to_the_instruments_address(http):
    http.reply = lambda r: httpx.Response(200, json={"id": "pyt_1", "state": "AwaitingPayment"})
    instrument = PayoutInstrument(
        identifier="bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", network="bitcoin"
    )
    withdrawal = Withdrawal(
        reference="wd_1", amount=Decimal("0.01"), currency_id="BTC", instrument=instrument
    )
    result = adapter_for(provider("crypto")).start_payout(
        withdrawal=withdrawal, notify_url="https://u"
    )
    sent = json.loads(http.requests[0].content)
    assert (sent["destination"], sent["amount"], sent["metadata"]) == (
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "0.01000000",
        {"orderId": "wd_1"},
    )
    assert (result.status, result.provider_reference) == ("pending", "pyt_1")


# --- payer instrument (what compliance links players by) ---------------------------------------


def _parsed(kind, body, headers=None):
    adapter = adapter_for(provider(kind))
    headers = _lower(headers or {})
    adapter.verify_webhook(body=body, headers=headers)
    return adapter.parse_webhook(body=body, headers=headers).result.payer_instrument


def test_card_payer_instrument_is_the_stripe_style_card_fingerprint():
    payload = {
        "id": "pay_1",
        "reference": "dep_abc",
        "status": "succeeded",
        "amount": "10.00",
        "payment_method_details": {"type": "card", "card": {"fingerprint": "Xt5EWLLDS7FJjR1c"}},
    }
    result = adapter_for(provider("card"))._result(payload)
    assert result.payer_instrument == PayerInstrument(
        type="card", fingerprint=instrument_fingerprint("card", "Xt5EWLLDS7FJjR1c")
    )
    assert adapter_for(provider("card"))._result({"status": "succeeded"}).payer_instrument is None


def test_card_sandbox_webhook_names_the_same_card_for_the_same_customer():
    first = _parsed("card", *Card.webhook(sandbox_object(customer="player-1"), core.PAID, SECRET))
    again = _parsed("card", *Card.webhook(sandbox_object(customer="player-1"), core.PAID, SECRET))
    other = _parsed("card", *Card.webhook(sandbox_object(customer="player-2"), core.PAID, SECRET))
    typed = sandbox_object(customer="player-2", payer="4242 4242 4242 4242")
    entered = _parsed("card", *Card.webhook(typed, core.PAID, SECRET))
    assert first.type == "card" and len(first.fingerprint) == 64
    assert first == again
    assert other != first and entered not in (first, other)


def test_ewallet_payer_instrument_is_the_paying_wallet_account_and_matches_a_payout_to_it():
    typed = sandbox_object(customer="player-1", payer="Shared.Wallet@Example.com")
    payer = _parsed("ewallet", Ewallet.webhook(typed, core.PAID, SECRET, "merchant-1")[0])
    payout_to_it = PayoutInstrument(kind="ewallet", identifier="shared.wallet@example.com")
    assert payer == PayerInstrument(type="ewallet", fingerprint=payout_to_it.fingerprint)
    derived = Ewallet.webhook(sandbox_object(customer="player-1"), core.PAID, SECRET, "merchant-1")
    assert b"pay_from_email=player-1%40wallet.sandbox.test" in derived[0]
    assert _parsed("ewallet", derived[0]).fingerprint == instrument_fingerprint(
        "ewallet", "player-1@wallet.sandbox.test"
    )
    nobody = Ewallet.webhook(sandbox_object(), core.PAID, SECRET, "merchant-1")[0]
    assert _parsed("ewallet", nobody) is None


def test_open_banking_payer_instrument_is_the_debtor_iban_and_matches_a_payout_to_it():
    typed = sandbox_object(customer="player-1", payer="de89 3704 0044 0532 0130 00")
    payer = _parsed("open_banking", *OpenBanking.webhook(typed, core.PAID, SECRET))
    payout_to_it = PayoutInstrument(
        kind="iban", identifier=normalise_iban("DE89370400440532013000")
    )
    assert payer == PayerInstrument(type="iban", fingerprint=payout_to_it.fingerprint)
    body = OpenBanking.render(sandbox_object(customer="player-1"), core.PAID)
    # The sandbox's own account for a player is a valid IBAN, the same on every payment.
    assert normalise_iban(body["debtor_account"]["iban"]) == body["debtor_account"]["iban"]
    assert body == OpenBanking.render(sandbox_object(customer="player-1"), core.PAID)


def test_crypto_invoices_name_no_payer_instrument():
    body, headers = Crypto.webhook(
        sandbox_object(currency="BTC", amount="0.001", customer="player-1"), core.PAID, SECRET
    )
    assert _parsed("crypto", body, headers) is None
