"""Skrill: the status_url signature as Skrill documents it, through our webhook endpoint; what
the connector sends; what the sandbox answers. Flows with the worker are in
test_connector_skrill_flows.py.

Skrill publishes no test vector with a known secret word, so callbacks here are signed by the
documented rule written out in this file (independently of the connector and the sandbox):
UPPERCASE(MD5(merchant_id + transaction_id + UPPERCASE(MD5(secret word)) + mb_amount +
mb_currency + status)), and SHA-256 the same way for sha2sig."""

import hashlib
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from django.test import Client

from payments.models import Deposit, WebhookEvent
from payments.providers.base import (
    PayerInstrument,
)
from payments.providers.skrill import SkrillConnector
from payments.sandbox import core
from payments.sandbox.models import SandboxPayment
from tests.payments.factories import cash, key, make_player, player_client, wait_for
from wallets import selectors
from wallets.models import JournalEntry

pytestmark = pytest.mark.django_db(transaction=True)
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(autouse=True)
def only_the_skrill_sandbox(monkeypatch):
    """These tests need the Skrill provider only; the `sandbox` fixture then sets up just it
    (and does not depend on the other protocols' sandboxes)."""
    from payments.services import setup

    monkeypatch.setattr(
        setup,
        "SANDBOX_PROVIDERS",
        [entry for entry in setup.SANDBOX_PROVIDERS if entry[3] == "skrill"],
    )


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 (Skrill's protocol)


def documented_signature(fields: dict, secret_word: str, algorithm: str = "md5") -> str:
    word = md5_hex(secret_word).upper()
    text = (
        fields["merchant_id"]
        + fields["transaction_id"]
        + word
        + fields["mb_amount"]
        + fields["mb_currency"]
        + fields["status"]
    )
    return hashlib.new(algorithm, text.encode()).hexdigest().upper()


def status_callback(provider, reference, *, secret=None, sha2=True, sign=None, **overrides):
    """A status_url post for `reference`, signed Skrill's way with `secret` (the provider's
    secret word unless given); `overrides` change fields before signing, `sign` after."""
    fields = {
        "pay_to_email": provider.options["merchant_email"],
        "pay_from_email": "payer@example.com",
        "merchant_id": provider.merchant_id,
        "customer_id": "123456789",
        "transaction_id": reference,
        "mb_transaction_id": "2500000001",
        "mb_amount": "30.00",
        "mb_currency": "EUR",
        "status": "2",
        "amount": "30.00",
        "currency": "EUR",
        "payment_type": "WLT",
        **overrides,
    }
    secret = provider.webhook_secret if secret is None else secret
    fields["md5sig"] = documented_signature(fields, secret)
    if sha2:
        fields["sha2sig"] = documented_signature(fields, secret, "sha256")
    fields.update(sign or {})
    return urlencode(fields)


def post_callback(provider, body, content_type=FORM):
    return Client().post(
        f"/api/v1/payments/webhooks/{provider.code}", data=body, content_type=content_type
    )


def start_deposit(player, amount, currency="EUR"):
    response = player_client(player).post(
        "/api/v1/deposits",
        {"method": "ewallet", "amount": amount, "currency": currency},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 201, response.json()
    return Deposit.objects.get(reference=response.json()["reference"])


def paid_at_skrill(deposit, amount=None):
    """The player paid on Skrill's page, but its callback has not come (we post our own)."""
    SandboxPayment.objects.filter(merchant_reference=deposit.reference).update(
        status=core.PAID, amount_paid=amount or deposit.amount
    )


def processed(body: str):
    return wait_for(
        lambda: WebhookEvent.objects.filter(body=body, processed_at__isnull=False).first(),
        what="the callback to be processed",
    )


def nothing_moved(deposit, player):
    deposit.refresh_from_db()
    assert deposit.status == "pending"
    assert cash(player) == Decimal(0)
    assert not JournalEntry.objects.exists()


# --- the signature, accepted the way Skrill signs ---------------------------------------------


def test_a_callback_signed_skrills_way_is_accepted_and_credits_the_deposit(sandbox):
    provider = sandbox["skrill"]
    player = make_player()
    deposit = start_deposit(player, "30.00")
    assert deposit.status == "pending" and "?sid=" in deposit.redirect_url
    paid_at_skrill(deposit)
    body = status_callback(provider, deposit.reference)

    response = post_callback(provider, body)

    assert response.status_code == 200, response.content
    event = processed(body)
    assert event.outcome == "applied" and event.event_type == "status 2 (processed)"
    deposit.refresh_from_db()
    assert (deposit.status, deposit.amount_received) == ("succeeded", Decimal("30.00"))
    assert cash(player) == Decimal("30.00")
    # The payer and the Skrill id come from Skrill's record (status_trn), not the callback.
    record = SandboxPayment.objects.get(merchant_reference=deposit.reference)
    assert deposit.provider_reference == record.data["mb_transaction_id"] != "2500000001"
    expected = PayerInstrument.of("ewallet", player.email)
    assert deposit.payer_instrument_fingerprint == expected.fingerprint
    assert selectors.ledger_problems() == []


def test_a_callback_with_md5sig_only_is_accepted_when_skrill_sends_no_sha2sig(sandbox):
    provider = sandbox["skrill"]
    provider.options = {**provider.options, "sha2sig_enabled": False}
    provider.save()
    player = make_player()
    deposit = start_deposit(player, "30.00")
    paid_at_skrill(deposit)
    body = status_callback(provider, deposit.reference, sha2=False)
    assert post_callback(provider, body).status_code == 200
    processed(body)
    assert cash(player) == Decimal("30.00")


def test_the_old_imitation_format_is_refused(sandbox):
    provider = sandbox["skrill"]
    player = make_player()
    deposit = start_deposit(player, "30.00")
    fields = dict(parse_qsl(status_callback(provider, deposit.reference)))
    fields["sha256sig"] = fields.pop("md5sig")
    del fields["sha2sig"]
    assert post_callback(provider, urlencode(fields)).status_code == 401
    nothing_moved(deposit, player)


BAD_CALLBACKS = {
    "tampered mb_amount": lambda p, ref: status_callback(p, ref, sign={"mb_amount": "3000.00"}),
    "tampered status": lambda p, ref: status_callback(p, ref, status="0", sign={"status": "2"}),
    "tampered transaction_id": lambda p, ref: status_callback(
        p, "dep_other", sign={"transaction_id": ref}
    ),
    "wrong secret word": lambda p, ref: status_callback(p, ref, secret="notthekey1"),
    "unsigned": lambda p, ref: status_callback(p, ref, sha2=False, sign={"md5sig": ""}),
    "md5sig missing": lambda p, ref: "&".join(
        part
        for part in status_callback(p, ref, sha2=False).split("&")
        if not part.startswith("md5sig=")
    ),
    "non-ASCII md5sig": lambda p, ref: status_callback(p, ref, sign={"md5sig": "É" * 32}),
    "lower-case md5sig": lambda p, ref: status_callback(p, ref, sha2=False).replace(
        "md5sig=", "md5sig=x"
    ),
    "sha2sig wrong, md5sig right": lambda p, ref: status_callback(
        p, ref, sign={"sha2sig": "A" * 64}
    ),
    "sha2sig missing while Skrill sends it": lambda p, ref: status_callback(p, ref, sha2=False),
    "another merchant_id": lambda p, ref: status_callback(p, ref, merchant_id="100000001"),
    "another pay_to_email": lambda p, ref: status_callback(
        p, ref, sign={"pay_to_email": "someone@else.test"}
    ),
    "a signed field twice": lambda p, ref: status_callback(p, ref) + "&mb_amount=9999.00",
    "missing mb_currency": lambda p, ref: status_callback(p, ref, sign={"mb_currency": ""}),
    "bad percent-escape": lambda p, ref: status_callback(p, ref) + "&x=%FF",
}


def test_callbacks_not_signed_right_are_refused_401_and_move_nothing(sandbox):
    provider = sandbox["skrill"]
    player = make_player()
    deposit = start_deposit(player, "30.00")
    paid_at_skrill(deposit)
    for number, (case, build) in enumerate(BAD_CALLBACKS.items(), start=1):
        response = post_callback(provider, build(provider, deposit.reference))
        assert response.status_code == 401, (case, response.content)
        assert response.json()["error"]["code"] == "invalid_signature", case
        assert WebhookEvent.objects.filter(outcome="rejected").count() == number, case
    assert WebhookEvent.objects.exclude(outcome="rejected").count() == 0
    nothing_moved(deposit, player)


def test_unreadable_deliveries_are_refused_before_anything_is_stored(sandbox):
    provider = sandbox["skrill"]
    for body, content_type, status in [
        (b"status=2&md5sig=\xff\xfe", FORM, 400),  # not UTF-8
        (b"status=2\x00&md5sig=AA", FORM, 400),  # NUL byte
        (b'{"status": "2"}', "application/json", 415),
        (b"status=2", "text/plain", 415),
    ]:
        response = Client().post(
            f"/api/v1/payments/webhooks/{provider.code}", data=body, content_type=content_type
        )
        assert response.status_code == status, body
    assert not WebhookEvent.objects.exists()


# --- fields no signature covers --------------------------------------------------------------


def test_a_signed_callback_whose_amount_disagrees_with_skrills_record_credits_nothing(sandbox):
    provider = sandbox["skrill"]
    player = make_player()
    deposit = start_deposit(player, "30.00")
    paid_at_skrill(deposit)
    # Signed by the merchant's own secret (as if Skrill had sent it) for ten times the amount.
    body = status_callback(provider, deposit.reference, mb_amount="300.00", amount="300.00")
    assert post_callback(provider, body).status_code == 200
    event = processed(body)
    assert event.outcome == "error" and "Skrill's record" in event.last_error
    nothing_moved(deposit, player)


def test_unsigned_fields_never_change_identity_or_deduplication(sandbox):
    provider = sandbox["skrill"]
    player = make_player()
    deposit = start_deposit(player, "30.00")
    paid_at_skrill(deposit)
    first = status_callback(provider, deposit.reference)
    again = status_callback(
        provider,
        deposit.reference,
        mb_transaction_id="9999999999",
        pay_from_email="attacker@example.com",
        amount="1.00",
        currency="GBP",
    )
    for body in (first, again):
        assert post_callback(provider, body).status_code == 200
        processed(body)
    assert [e.outcome for e in WebhookEvent.objects.order_by("pk")] == ["applied", "no_change"]
    deposit.refresh_from_db()
    assert cash(player) == Decimal("30.00")
    assert deposit.payer_instrument_fingerprint == (
        PayerInstrument.of("ewallet", player.email).fingerprint
    )


# --- the sandbox's own callbacks and what the connector sends ------------------------------------


def test_checkout_request_is_what_quick_checkout_documents(sandbox, monkeypatch):
    provider = sandbox["skrill"]
    sent = []
    real = SkrillConnector._request

    def record(self, method, path, **kwargs):
        response = real(self, method, path, **kwargs)
        sent.append((method, str(response.request.url), dict(kwargs.get("data", {}))))
        return response

    monkeypatch.setattr(SkrillConnector, "_request", record)
    player = make_player()
    deposit = start_deposit(player, "30.00")

    [(method, url, form)] = sent
    assert method == "POST" and url == f"{provider.api_base_url}pay/"
    assert form == {
        "pay_to_email": provider.options["merchant_email"],
        "transaction_id": deposit.reference,
        "amount": "30.00",
        "currency": "EUR",
        "status_url": f"http://{url.split('/')[2]}/api/v1/payments/webhooks/{provider.code}",
        "return_url": form["return_url"],
        "cancel_url": form["return_url"],
        "language": "EN",
        "prepare_only": "1",
        "merchant_fields": "player_id",
        "player_id": player.external_id,
        "pay_from_email": player.email,
        "firstname": player.first_name,
        "lastname": player.last_name,
        "date_of_birth": player.date_of_birth.strftime("%d%m%Y"),
    }
    payment = SandboxPayment.objects.get(merchant_reference=deposit.reference)
    assert deposit.redirect_url == f"{provider.api_base_url}pay/?sid={payment.data['sid']}"
    assert len(payment.data["sid"]) == 32
    page = httpx.get(deposit.redirect_url)
    assert page.status_code == 200 and "Skrill" in page.text and "30 EUR" in page.text


def test_the_sandbox_refuses_wrong_credentials_as_skrill_does(sandbox):
    provider = sandbox["skrill"]
    base = provider.api_base_url
    md5 = md5_hex(provider.api_key)
    email = provider.options["merchant_email"]
    for password in (provider.api_key, md5.upper(), "0" * 32):
        answer = httpx.post(
            f"{base}query.pl",
            data={"email": email, "password": password, "action": "status_trn", "trn_id": "x"},
        )
        assert (answer.status_code, answer.text) == (200, "401\t\tCannot login\n")
        for api in ("pay.pl", "refund.pl"):
            answer = httpx.post(
                f"{base}{api}", data={"email": email, "password": password, "action": "prepare"}
            )
            assert "<error_msg>CANNOT_LOGIN</error_msg>" in answer.text
    answer = httpx.post(
        f"{base}query.pl",
        data={"email": email, "password": md5, "action": "status_trn", "trn_id": "dep_no"},
    )
    assert answer.text == "403\t\tTransaction not found: dep_no\n"


BAD_SANDBOX_REQUESTS = [
    ("pay/", {"pay_to_email": "x@y.test", "amount": "10", "currency": "EUR"}),
    ("pay/", {"amount": "abc", "currency": "EUR"}),
    ("pay/", {"amount": "10.001", "currency": "EUR"}),
    ("pay/", {"amount": "1" * 40, "currency": "EUR"}),
    ("pay/", {"amount": "10", "currency": "JPY"}),
    ("pay/", {"amount": "10", "currency": "EUR", "transaction_id": "x" * 200}),
    ("pay/", {"amount": "10", "currency": "EUR", "status_url": "javascript:alert(1)"}),
    ("pay/?sid=nope", {}),
    ("query.pl", {"action": "status_trn"}),
    ("query.pl", {"action": "drop_tables", "trn_id": "1"}),
    ("pay.pl", {"action": "prepare", "amount": "-1", "currency": "EUR"}),
    ("pay.pl", {"action": "prepare", "amount": "1", "currency": "EUR", "bnf_email": "no"}),
    ("pay.pl", {"action": "transfer", "sid": "0" * 32}),
    ("pay.pl", {"action": "launch"}),
    ("refund.pl", {"action": "prepare", "transaction_id": "dep_unknown"}),
    ("refund.pl", {"action": "refund"}),
]


def test_the_sandbox_answers_bad_requests_in_skrills_shapes_never_500(sandbox):
    provider = sandbox["skrill"]
    credentials = {
        "email": provider.options["merchant_email"],
        "password": md5_hex(provider.api_key),
    }
    for path, data in BAD_SANDBOX_REQUESTS:
        if path.startswith("pay/"):
            data = {"pay_to_email": provider.options["merchant_email"], **data}
        else:
            data = {**credentials, **data}
        answer = httpx.post(f"{provider.api_base_url}{path}", data=data)
        if path.startswith("pay/"):
            assert answer.status_code in (400, 404), (path, data, answer.text)
        elif path == "query.pl":
            assert answer.status_code == 200 and answer.text[:3] in ("400", "404"), answer.text
        else:
            assert answer.status_code == 200 and "<error_msg>" in answer.text, answer.text
    assert not SandboxPayment.objects.exists()
