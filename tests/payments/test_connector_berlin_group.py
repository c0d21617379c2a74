"""Berlin Group NextGenPSD2 PIS: the connector against the sandbox bank over real HTTP, with
the real worker. There is no official Python SDK; the oracles are the standard's own rules
(IG signature section, the OpenAPI status list) and draft-cavage-http-signatures' published
test vectors."""

import base64
import json
import uuid
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from django.contrib.auth import get_user_model
from django.utils import timezone

from payments import services
from payments.models import Chargeback, Deposit, PaymentProvider, WebhookEvent, Withdrawal
from payments.providers import adapter_for
from payments.providers.base import CANCELLED, FAILED, PENDING, SUCCEEDED, InvalidSignature
from payments.providers.berlin_group import (
    TRANSACTION_STATUSES,
    BerlinGroupConnector,
    body_digest,
    rsa_sha256,
    signing_string,
)
from payments.sandbox import berlin_group as bank
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
from wallets.models import JournalEntry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def only_the_bank(monkeypatch):
    """These tests need the sandbox bank alone: set up no other provider (faster, and
    independent of the other protocols' sandboxes)."""
    from payments.services import setup

    monkeypatch.setattr(
        setup,
        "SANDBOX_PROVIDERS",
        [entry for entry in setup.SANDBOX_PROVIDERS if entry[3] == "berlin_group"],
    )


@pytest.fixture
def sandbox(only_the_bank, sandbox):
    return sandbox


# --- published vectors and tables (no HTTP) ----------------------------------------------------

# draft-cavage-http-signatures-10, Appendix C: the test key and the signatures of its Default
# (C.1) and Basic (C.2) tests, and the digest of its example body (C.3).
CAVAGE_TEST_KEY = b"""-----BEGIN RSA PRIVATE KEY-----
MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj+CvfSC8+q28hxA161QF
NUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6Z4UMR7EOcpfdUE9Hf3m/hs+F
UR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJwoYi+1hqp1fIekaxsyQIDAQAB
AoGBAJR8ZkCUvx5kzv+utdl7T5MnordT1TvoXXJGXK7ZZ+UuvMNUCdN2QPc4sBiA
QWvLw1cSKt5DsKZ8UETpYPy8pPYnnDEz2dDYiaew9+xEpubyeW2oH4Zx71wqBtOK
kqwrXa/pzdpiucRRjk6vE6YY7EBBs/g7uanVpGibOVAEsqH1AkEA7DkjVH28WDUg
f1nqvfn2Kj6CT7nIcE3jGJsZZ7zlZmBmHFDONMLUrXR/Zm3pR5m0tCmBqa5RK95u
412jt1dPIwJBANJT3v8pnkth48bQo/fKel6uEYyboRtA5/uHuHkZ6FQF7OUkGogc
mSJluOdc5t6hI1VsLn0QZEjQZMEOWr+wKSMCQQCC4kXJEsHAve77oP6HtG/IiEn7
kpyUXRNvFsDE0czpJJBvL/aRFUJxuRK91jhjC68sA7NsKMGg5OXb5I5Jj36xAkEA
gIT7aFOYBFwGgQAQkWNKLvySgKbAZRTeLBacpHMuQdl1DfdntvAyqpAZ0lY0RKmW
G6aFKaqQfOXKCyWoUiVknQJAXrlgySFci/2ueKlIE1QqIiLSZ8V8OlpFLRnb1pzI
7U1yQXnTAEFYM560yJlzUpOb1V4cScGd365tiSMvxLOvTA==
-----END RSA PRIVATE KEY-----"""
CAVAGE_DATE = "Sun, 05 Jan 2014 21:31:40 GMT"
CAVAGE_DIGEST = "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
CAVAGE_DEFAULT = (
    "SjWJWbWN7i0wzBvtPl8rbASWz5xQW6mcJmn+ibttBqtifLN7Sazz6m79cNfwwb8DMJ5cou1s7uEGKKCs+FLEEaDV5lp7q25WqS"
    "+lavg7T8hc0GppauB6hbgEKTwblDHYGEtbGmtdHgVCk9SuS13F0hZ8FD0k/5OxEPXe5WozsbM="
)
CAVAGE_BASIC = (
    "qdx+H7PHHDZgy4y/Ahn9Tny9V3GP6YgBPyUXMmoxWtLbHpUnXS2mg2+SbrQDMCJypxBLSPQR2aAjn7ndmw2iicw3HMbe8VfEdK"
    "FYRqzic+efkb3nndiv/x1xSHDJWeSWkx3ButlYSuBskLu6kd9Fswtemr3lgdDEmn04swr2Os0="
)


@pytest.mark.django_db(transaction=False)
def test_the_signer_reproduces_the_published_http_signature_vectors():
    key_ = serialization.load_pem_private_key(CAVAGE_TEST_KEY, None)
    default = signing_string(["date"], {"date": CAVAGE_DATE})
    basic = signing_string(
        ["(request-target)", "host", "date"],
        {"host": "example.com", "date": CAVAGE_DATE},
        request_target="post /foo?param=value&pet=dog",
    )
    assert rsa_sha256(key_, default) == CAVAGE_DEFAULT
    assert rsa_sha256(key_, basic) == CAVAGE_BASIC
    assert (
        body_digest(b'{"hello": "world"}') == "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
    )
    # The sandbox bank's own checks accept the same vectors.
    assert bank.digest_matches(
        "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", b'{"hello": "world"}'
    )
    assert not bank.digest_matches("SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", b"{}")
    key_.public_key().verify(
        base64.b64decode(CAVAGE_DEFAULT), default.encode(), padding.PKCS1v15(), hashes.SHA256()
    )


@pytest.mark.django_db(transaction=False)
def test_every_transaction_status_of_the_standard_is_mapped_and_only_settlement_credits():
    # The enum of `transactionStatus` in the OpenAPI psd2-api 1.3.12.
    standard = {
        "ACCC", "ACCP", "ACSC", "ACSP", "ACTC", "ACWC", "ACWP",
        "RCVD", "PDNG", "RJCT", "CANC", "ACFC", "PATC", "PART",
    }  # fmt: skip
    assert set(TRANSACTION_STATUSES) == standard
    assert {c for c, s in TRANSACTION_STATUSES.items() if s == SUCCEEDED} == {"ACSC", "ACCC"}
    assert TRANSACTION_STATUSES["RJCT"] == FAILED
    assert TRANSACTION_STATUSES["CANC"] == CANCELLED
    connector = BerlinGroupConnector(PaymentProvider(code="x", protocol="berlin_group"))
    unknown = connector._status_result("pis_1", {"transactionStatus": "ZZZZ"})
    assert unknown.status == PENDING


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize(
    "code,kind",
    [
        ("FUNDS_NOT_AVAILABLE", "soft"),
        ("AM04", "soft"),
        ("AB05", "soft"),
        ("TM01", "soft"),
        ("PRODUCT_INVALID", "soft"),
        ("AC04", "hard"),
        ("AC06", "hard"),
        ("AG01", "hard"),
        ("MS02", "hard"),  # the customer refused
        ("PAYMENT_FAILED", "hard"),
        ("CERTIFICATE_INVALID", "hard"),
        ("RJCT", "hard"),  # rejected without a reason (e.g. SCA not finished)
        ("SOMETHING_NEW", "hard"),
    ],
)
def test_decline_codes_are_soft_only_where_a_retry_can_succeed(code, kind):
    connector = BerlinGroupConnector(PaymentProvider(code="x", protocol="berlin_group"))
    result = connector._status_result(
        "pis_1",
        {"transactionStatus": "RJCT", "tppMessages": [{"category": "ERROR", "code": code}]},
    )
    assert (result.status, result.decline_code, result.decline_kind) == (FAILED, code, kind)


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"pis_1"',
        b"{}",
        b'{"paymentId": ""}',
        b'{"paymentId": "../../v1/payments"}',
        b'{"paymentId": "pis/1"}',
        '{"paymentId": "pis_\u00e9"}'.encode(),
        b'{"paymentId": 12}',
        b'{"paymentId": "pis_1", "transactionStatus": "paid"}',
        b'{"paymentId": "pis_1", "transactionStatus": ["ACSC"]}',
        # The id and the link name two different payments.
        b'{"paymentId": "pis_1", "_links": {"self": {"href": "/v1/payments/'
        b'sepa-credit-transfers/pis_2"}}}',
        b'{"_links": {"self": {"href": "https://evil.example/other"}}}',
        b'{"paymentId": "pis_1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
)
def test_verify_webhook_refuses_anything_but_a_notification_naming_one_payment(body):
    connector = BerlinGroupConnector(PaymentProvider(code="x", protocol="berlin_group"))
    with pytest.raises(InvalidSignature):
        connector.verify_webhook(body=body, headers={"content-type": "application/json"})


@pytest.mark.django_db(transaction=False)
def test_verify_webhook_accepts_a_notification_by_id_or_by_resource_link():
    connector = BerlinGroupConnector(PaymentProvider(code="x", protocol="berlin_group"))
    link = "https://bank.example/psd2/v1/payments/instant-sepa-credit-transfers/pis_1/status"
    for body in (
        {"paymentId": "pis_1", "transactionStatus": "ACSC"},
        {"_links": {"status": {"href": link}}},
        {"paymentId": "pis_1", "_links": {"self": {"href": link.removesuffix("/status")}}},
    ):
        connector.verify_webhook(body=json.dumps(body).encode(), headers={})


# --- helpers for the HTTP tests ----------------------------------------------------------------


def start_deposit(player, amount, **extra):
    response = player_client(player).post(
        "/api/v1/deposits",
        {"method": "bank_transfer", "amount": amount, "currency": "EUR", **extra},
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


def processed_events(reference, count, timeout=15):
    return wait_for(
        lambda: (
            list(WebhookEvent.objects.filter(payment_reference=reference).order_by("pk"))
            if WebhookEvent.objects.filter(
                payment_reference=reference, processed_at__isnull=False
            ).count()
            >= count
            else None
        ),
        timeout=timeout,
        what=f"{count} processed notifications for {reference}",
    )


def bank_payment(reference) -> SandboxPayment:
    return SandboxPayment.objects.get(provider_code="sandbox-bank", merchant_reference=reference)


def iban_fingerprint(iban):
    from payments.instruments import instrument_fingerprint

    return instrument_fingerprint("iban", iban)


def other_seal():
    """A certificate and key that are not the provider's."""
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Someone else")])
    now = timezone.now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(other_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(other_key, hashes.SHA256())
    )
    return certificate, other_key


def signed_request(provider, body: dict, **extra):
    """What the connector would send for a deposit initiation, as (content, headers)."""
    connector = adapter_for(provider)
    content = json.dumps(body).encode()
    headers = connector._signed_headers(
        content,
        {
            "Content-Type": "application/json",
            "PSU-IP-Address": "192.0.2.10",
            "TPP-Redirect-URI": "https://casino.example/back",
            **extra,
        },
    )
    return content, headers


def initiation_body(provider, amount="10.00", reference=None):
    return {
        "endToEndIdentification": reference or f"dep_{uuid.uuid4().hex[:20]}",
        "instructedAmount": {"currency": "EUR", "amount": amount},
        "creditorAccount": {"iban": provider.options["creditor_iban"]},
        "creditorName": provider.options["creditor_name"],
        "remittanceInformationUnstructured": "test",
    }


def resign(provider, headers: dict, content: bytes, *, key_=None, **replace):
    """The headers with some values replaced and the signature made again over them."""
    certificate, own_key = provider_seal(provider)
    values = {**{k.lower(): v for k, v in headers.items()}, **replace}
    names = ["digest", "x-request-id", "date", "tpp-redirect-uri"]
    signature = rsa_sha256(key_ or own_key, signing_string(names, values))
    from payments.providers.berlin_group import key_id

    return {
        **{k: v for k, v in headers.items() if k.lower() not in replace},
        **{k: v for k, v in replace.items()},
        "Signature": (
            f'keyId="{key_id(certificate)}",algorithm="rsa-sha256",'
            f'headers="{" ".join(names)}",signature="{signature}"'
        ),
    }


def provider_seal(provider):
    return adapter_for(provider)._seal()


# --- the connector's requests, and the bank's refusals -----------------------------------------


def test_a_deposit_initiation_is_the_documented_signed_request(sandbox):
    provider = sandbox["berlin_group"]
    player = make_player()
    body = start_deposit(player, "25.00")
    deposit = Deposit.objects.get(reference=body["reference"])
    payment = bank_payment(deposit.reference)

    assert deposit.status == "pending"
    assert deposit.provider_reference == payment.sandbox_id
    assert body["redirect_url"].endswith(f"/consent/{payment.sandbox_id}")
    assert payment.data["product"] == "instant-sepa-credit-transfers"
    assert payment.data["initiation"] == {
        "endToEndIdentification": deposit.reference,
        "instructedAmount": {"currency": "EUR", "amount": "25.00"},
        "creditorAccount": {"iban": provider.options["creditor_iban"]},
        "creditorName": "Sandbox Casino Ltd",
        "remittanceInformationUnstructured": deposit.reference,
    }
    received = payment.data["received"]
    uuid.UUID(received["X-Request-ID"])
    assert received["PSU-IP-Address"] == deposit.ip == "127.0.0.1"
    assert received["TPP-Notification-URI"] == services.webhook_url(provider)
    assert received["TPP-Redirect-URI"] == received["TPP-Nok-Redirect-URI"]
    assert (
        received["TPP-Redirect-Preferred"] == received["TPP-Rejection-NoFunds-Preferred"] == "true"
    )
    assert "PSU-Corporate-ID" not in received

    # The signature, checked here by the IG's rule rather than by the bank's code.
    certificate = x509.load_pem_x509_certificate(provider.options["tpp_certificate"].encode())
    params = bank.signature_params(received["Signature"])
    assert params["keyId"] == (
        f"SN={certificate.serial_number:X},CA="
        + certificate.issuer.rfc4514_string().replace(" ", "%20")
    )
    assert params["algorithm"] == "rsa-sha256"
    assert params["headers"] == "digest x-request-id date tpp-redirect-uri"
    signed = "\n".join(
        f"{name}: {received[canonical]}"
        for name, canonical in [
            ("digest", "Digest"),
            ("x-request-id", "X-Request-ID"),
            ("date", "Date"),
            ("tpp-redirect-uri", "TPP-Redirect-URI"),
        ]
    )
    certificate.public_key().verify(
        base64.b64decode(params["signature"]), signed.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    # The bank recomputed it over the raw body and accepted it (PostgreSQL's jsonb keeps the
    # body here in its own key order, so it is not recomputed from the stored copy).
    assert received["Digest"].startswith("SHA-256=")


def tampered(provider, tamper: str, content: bytes, headers: dict):
    """One change to a correctly signed initiation."""
    headers = dict(headers)
    if tamper == "unsigned":
        headers.pop("Signature")
    elif tamper == "no certificate":
        headers.pop("TPP-Signature-Certificate")
    elif tamper == "no digest":
        headers.pop("Digest")
    elif tamper == "body changed":
        content = content.replace(b'"10.00"', b'"99.00"')
    elif tamper == "body and digest changed":
        content = content.replace(b'"10.00"', b'"99.00"')
        headers["Digest"] = body_digest(content)
    elif tamper == "another certificate":
        certificate, other_key = other_seal()
        headers["TPP-Signature-Certificate"] = base64.b64encode(
            certificate.public_bytes(serialization.Encoding.DER)
        ).decode()
        headers = resign(provider, headers, content, key_=other_key)
    elif tamper == "signed with another key":
        headers = resign(provider, headers, content, key_=other_seal()[1])
    elif tamper == "non-ASCII certificate":
        headers["TPP-Signature-Certificate"] = "bm90IGEgY2VydGlmaWNhdGU=\u00e9".encode()
    elif tamper == "non-ASCII signature":
        headers["Signature"] = (
            headers["Signature"].replace('signature="', 'signature="\u00e9').encode()
        )
    elif tamper == "malformed signature":
        headers["Signature"] = 'keyId="SN=1,CA=x",algorithm="rsa-sha256",signature=AAAA'
    elif tamper == "redirect not signed":
        headers["Signature"] = headers["Signature"].replace(" tpp-redirect-uri", "")
    elif tamper == "stale date":
        stale = (timezone.now() - timedelta(minutes=10)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        headers = resign(provider, headers, content, date=stale)
    elif tamper == "request id not a uuid":
        headers = resign(provider, headers, content, **{"x-request-id": "12345"})
    else:  # pragma: no cover - a typo in the table below
        raise AssertionError(tamper)
    return content, headers


REFUSALS = [
    ("unsigned", 401, "SIGNATURE_MISSING"),
    ("no certificate", 401, "CERTIFICATE_MISSING"),
    ("no digest", 401, "SIGNATURE_MISSING"),
    ("body changed", 401, "SIGNATURE_INVALID"),
    ("body and digest changed", 401, "SIGNATURE_INVALID"),
    ("another certificate", 401, "CERTIFICATE_INVALID"),
    ("signed with another key", 401, "SIGNATURE_INVALID"),
    ("non-ASCII certificate", 401, "CERTIFICATE_INVALID"),
    ("non-ASCII signature", 401, "SIGNATURE_INVALID"),
    ("malformed signature", 401, "SIGNATURE_INVALID"),
    ("redirect not signed", 401, "SIGNATURE_INVALID"),
    ("stale date", 400, "TIMESTAMP_INVALID"),
    ("request id not a uuid", 400, "FORMAT_ERROR"),
]


def test_the_bank_refuses_unsigned_tampered_and_foreign_requests(sandbox):
    provider = sandbox["berlin_group"]
    url = provider.api_base_url + "v1/payments/sepa-credit-transfers"
    # The untouched request is accepted: each variant differs from one in one thing only.
    content, headers = signed_request(provider, initiation_body(provider))
    assert httpx.post(url, content=content, headers=headers).status_code == 201
    created = SandboxPayment.objects.count()
    for tamper, status, code in REFUSALS:
        content, headers = signed_request(provider, initiation_body(provider))
        content, headers = tampered(provider, tamper, content, headers)
        response = httpx.post(url, content=content, headers=headers)
        assert response.status_code == status, (tamper, response.text)
        [message] = response.json()["tppMessages"]
        assert (message["category"], message["code"]) == ("ERROR", code), tamper
        assert response.headers["content-type"] == "application/json", tamper
    assert SandboxPayment.objects.count() == created


def test_the_bank_answers_unknown_routes_and_invalid_initiations_with_its_error_shape(sandbox):
    provider = sandbox["berlin_group"]
    connector = adapter_for(provider)
    for method, path, status, code in [
        ("POST", "v1/payments/target-2-payments", 403, "PRODUCT_INVALID"),
        ("POST", "v1/payments/no-such-product", 404, "PRODUCT_UNKNOWN"),
        ("POST", "v1/bulk-payments/sepa-credit-transfers", 405, "SERVICE_INVALID"),
        ("GET", "v1/payments/sepa-credit-transfers/pis_unknown/status", 404, "RESOURCE_UNKNOWN"),
        ("GET", "v1/payments/sepa-credit-transfers/pis_unknown", 404, "RESOURCE_UNKNOWN"),
        ("DELETE", "v1/payments/sepa-credit-transfers/pis_unknown", 404, "RESOURCE_UNKNOWN"),
    ]:
        payload = initiation_body(provider) if method == "POST" else None
        response = connector._call(
            method, path, payload=payload, headers={"PSU-IP-Address": "192.0.2.1"}
        )
        assert response.status_code == status, path
        assert response.json()["tppMessages"][0]["code"] == code, path
    for change, field in [
        ({"instructedAmount": {"currency": "USD", "amount": "10.00"}}, "instructedAmount.currency"),
        ({"instructedAmount": {"currency": "EUR", "amount": "10.001"}}, "instructedAmount.amount"),
        ({"instructedAmount": {"currency": "EUR", "amount": 10}}, "instructedAmount.amount"),
        ({"instructedAmount": {"currency": "EUR", "amount": "0.00"}}, "instructedAmount.amount"),
        ({"creditorAccount": {"iban": "DE89370400440532013001"}}, "creditorAccount"),
        ({"creditorAccount": "DE89370400440532013000"}, "creditorAccount"),
        ({"debtorAccount": {"iban": "not an iban"}}, "debtorAccount"),
        ({"creditorName": ""}, "creditorName"),
        ({"endToEndIdentification": "x" * 36}, "endToEndIdentification"),
    ]:
        response = connector._call(
            "POST",
            "v1/payments/sepa-credit-transfers",
            payload={**initiation_body(provider), **change},
            headers={"PSU-IP-Address": "192.0.2.1"},
        )
        assert response.status_code == 400, field
        [message] = response.json()["tppMessages"]
        assert (message["code"], message["path"]) == ("FORMAT_ERROR", field)
    without_ip = connector._call(
        "POST", "v1/payments/sepa-credit-transfers", payload=initiation_body(provider)
    )
    assert without_ip.json()["tppMessages"][0]["path"] == "PSU-IP-Address"
    assert not SandboxPayment.objects.exists()


# --- deposits end to end -----------------------------------------------------------------------


def test_a_deposit_approved_on_the_bank_page_is_credited_from_the_iban_the_player_chose(sandbox):
    player = make_player()
    body = start_deposit(player, "25.00")
    page = httpx.get(body["redirect_url"])
    assert page.status_code == 200 and "Approve" in page.text
    back = httpx.post(
        body["redirect_url"], data={"action": "approve", "payer": "de89 3704 0044 0532 0130 00"}
    )
    assert back.status_code == 302

    deposit = deposit_status(body["reference"], "succeeded")
    assert deposit.amount_received == Decimal("25.00")
    assert cash(player) == Decimal("25.00")
    assert deposit.payer_instrument_fingerprint == iban_fingerprint("DE89370400440532013000")
    [event] = processed_events(deposit.reference, 1)
    assert (event.outcome, event.event_type) == ("applied", "transactionStatus ACCC")
    assert selectors.ledger_problems() == []


def test_without_a_typed_iban_the_same_player_always_pays_from_the_same_account(sandbox):
    ann, bob = make_player(), make_player()
    references = []
    for player in (ann, ann, bob):
        body = start_deposit(player, "10.00")
        httpx.post(body["redirect_url"], data={"action": "approve"})
        references.append(body["reference"])
    first, second, other = (deposit_status(r, "succeeded") for r in references)
    assert first.payer_instrument_fingerprint == second.payer_instrument_fingerprint
    assert first.payer_instrument_fingerprint != other.payer_instrument_fingerprint


def test_a_deposit_denied_on_the_bank_page_is_cancelled_and_goes_back_to_the_cashier(sandbox):
    player = make_player()
    body = start_deposit(player, "16.00", return_url="https://casino.example/cashier")
    back = httpx.post(body["redirect_url"], data={"action": "deny"})
    assert back.headers["location"] == "https://casino.example/cashier"
    deposit_status(body["reference"], "cancelled")
    assert cash(player) == Decimal(0)


def test_a_rejected_initiation_fails_with_the_banks_reason(sandbox):
    player = make_player()
    for amount, code, kind in [("15.05", "FUNDS_NOT_AVAILABLE", "soft"), ("15.06", "AC04", "hard")]:
        body = start_deposit(player, amount)
        assert (body["status"], body["decline_code"], body["decline_kind"]) == (
            "failed",
            code,
            kind,
        )
        processed_events(body["reference"], 1)
    assert cash(player) == Decimal(0)


def test_a_payment_to_a_whitelisted_beneficiary_settles_in_the_answer_with_its_payer(sandbox):
    player = make_player()
    body = start_deposit(player, "20.01")
    assert body["status"] == "succeeded" and body["redirect_url"] == ""
    deposit = Deposit.objects.get(reference=body["reference"])
    assert deposit.payer_instrument_type == "iban" and deposit.payer_instrument_fingerprint
    [event] = processed_events(deposit.reference, 1)
    assert event.outcome == "no_change"
    assert cash(player) == Decimal("20.01")


def test_an_initiation_that_timed_out_cannot_be_authorised_and_the_janitor_expires_it(sandbox):
    player = make_player()
    body = start_deposit(player, "20.07")
    assert (body["status"], body["redirect_url"]) == ("pending", "")
    deposit = Deposit.objects.get(reference=body["reference"])
    # We never learnt the paymentId: nothing to poll, and the player never saw the bank page.
    assert deposit.provider_reference == ""
    assert adapter_for(deposit.provider).fetch_payment_status(deposit=deposit) is None
    assert bank_payment(deposit.reference).status == "pending"

    counts = services.poll_stuck_payments(stuck_after=timedelta(0))
    assert (counts["deposits_polled"], counts["deposits_expired"]) == (1, 0)
    Deposit.objects.filter(pk=deposit.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.poll_stuck_payments(stuck_after=timedelta(0))["deposits_expired"] == 1
    deposit.refresh_from_db()
    assert deposit.status == "expired"
    assert cash(player) == Decimal(0)


def test_a_deposit_whose_notification_never_came_is_resolved_by_polling(sandbox):
    player = make_player()
    body = start_deposit(player, "30.00")
    deposit = Deposit.objects.get(reference=body["reference"])
    payment = bank_payment(deposit.reference)
    # The PSU approved, but the bank's notification is lost (we drop the notify URI).
    payment.notify_url = ""
    payment.save(update_fields=["notify_url"])
    httpx.post(body["redirect_url"], data={"action": "approve"})
    assert Deposit.objects.get(pk=deposit.pk).status == "pending"

    assert services.poll_stuck_payments(stuck_after=timedelta(0))["deposits_polled"] == 1
    deposit.refresh_from_db()
    assert (deposit.status, deposit.transitions.last().source) == ("succeeded", "janitor")
    assert deposit.payer_instrument_fingerprint
    assert cash(player) == Decimal("30.00")
    assert not WebhookEvent.objects.exists()


def test_duplicate_and_out_of_order_notifications_credit_once(sandbox):
    player = make_player()
    twice = start_deposit(player, "40.09")
    late = start_deposit(player, "40.10")
    assert twice["status"] == late["status"] == "pending"  # ACSP: settling, not settled
    first, second = processed_events(twice["reference"], 2)
    assert sorted([first.outcome, second.outcome]) == ["applied", "no_change"]
    final, stale = processed_events(late["reference"], 2)
    # The late notification claimed RCVD; the bank said ACCC, already applied.
    assert json.loads(stale.body)["transactionStatus"] == "RCVD"
    assert (final.outcome, stale.outcome) == ("applied", "no_change")
    assert stale.event_type == "transactionStatus ACCC"
    assert cash(player) == Decimal("80.19")
    assert JournalEntry.objects.filter(kind=JournalEntry.Kind.DEPOSIT).count() == 2
    assert selectors.ledger_problems() == []


def test_a_forged_notification_is_answered_by_what_the_bank_says(sandbox):
    player = make_player()
    body = start_deposit(player, "40.11")
    deposit = Deposit.objects.get(reference=body["reference"])
    [event] = processed_events(deposit.reference, 1)
    # The notification claimed a rejection; the bank's API says the payment settled.
    assert json.loads(event.body)["transactionStatus"] == "RJCT"
    assert (event.outcome, event.event_type) == ("applied", "transactionStatus ACCC")
    deposit.refresh_from_db()
    assert deposit.status == "succeeded"
    assert cash(player) == Decimal("40.11")


def test_sepa_has_no_chargebacks_so_the_dispute_scenarios_credit_once(sandbox):
    player = make_player()
    references = [start_deposit(player, amount)["reference"] for amount in ("40.12", "40.13")]
    for reference in references:
        deposit_status(reference, "succeeded")
        processed_events(reference, 1)
    assert cash(player) == Decimal("80.25")
    assert not Chargeback.objects.exists()


# --- the webhook endpoint ----------------------------------------------------------------------


def post_notification(provider, body: bytes, content_type="application/json"):
    return httpx.post(
        services.webhook_url(provider), content=body, headers={"Content-Type": content_type}
    )


MALFORMED_NOTIFICATIONS = [
    (b"not json", "application/json", 401),
    (b"[]", "application/json", 401),
    (b'{"transactionStatus": "ACCC"}', "application/json", 401),
    (b'{"paymentId": "../../admin", "transactionStatus": "ACCC"}', "application/json", 401),
    ('{"paymentId": "p\u00efs_1"}'.encode(), "application/json", 401),
    (b'{"paymentId": "PID", "transactionStatus": "settled"}', "application/json", 401),
    (b'{"paymentId": "PID", "_links": {"self": {"href": "/elsewhere"}}}', "application/json", 401),
    (b'{"paymentId": "PID", "transactionStatus": "ACCC"}', "text/plain", 415),
    (b'{"paymentId": "PID", "transactionStatus": "ACCC"}\x00', "application/json", 400),
    (b'{"paymentId": "PID", "transactionStatus": "\xff"}', "application/json", 400),
]


def test_a_malformed_notification_is_refused_and_moves_nothing(sandbox):
    provider = sandbox["berlin_group"]
    player = make_player()
    pending = start_deposit(player, "25.00")
    deposit = Deposit.objects.get(reference=pending["reference"])
    entries = JournalEntry.objects.count()
    for body, content_type, status in MALFORMED_NOTIFICATIONS:
        body = body.replace(b"PID", deposit.provider_reference.encode())
        response = post_notification(provider, body, content_type)
        assert response.status_code == status, body
    deposit.refresh_from_db()
    assert (deposit.status, cash(player)) == ("pending", Decimal(0))
    assert JournalEntry.objects.count() == entries
    assert not WebhookEvent.objects.filter(is_signature_valid=True).exists()
    rejected = WebhookEvent.objects.filter(outcome="rejected")
    assert rejected.count() == sum(1 for *_, status in MALFORMED_NOTIFICATIONS if status == 401)
    assert not rejected.filter(processed_at__isnull=False).exists()


def test_a_well_formed_but_false_notification_is_stored_and_changes_nothing(sandbox):
    player = make_player()
    pending = start_deposit(player, "25.00")
    deposit = Deposit.objects.get(reference=pending["reference"])
    entries = JournalEntry.objects.count()
    claims = [
        {"paymentId": deposit.provider_reference, "transactionStatus": "ACCC"},
        {"paymentId": "pis_nobody_knows", "transactionStatus": "ACCC"},
    ]
    for claim in claims:
        response = post_notification(deposit.provider, json.dumps(claim).encode())
        assert response.status_code == 200
    events = wait_for(
        lambda: (
            list(WebhookEvent.objects.filter(processed_at__isnull=False))
            if WebhookEvent.objects.filter(processed_at__isnull=False).count() == 2
            else None
        ),
        what="both notifications processed",
    )
    assert {e.outcome for e in events} == {"no_change"}
    deposit.refresh_from_db()
    assert (deposit.status, cash(player)) == ("pending", Decimal(0))
    assert JournalEntry.objects.count() == entries


def test_parse_webhook_dedups_on_the_payment_and_the_status_the_bank_reports(sandbox):
    player = make_player()
    body = start_deposit(player, "25.00")
    deposit = Deposit.objects.get(reference=body["reference"])
    connector = adapter_for(deposit.provider)
    claim = json.dumps({"paymentId": deposit.provider_reference, "transactionStatus": "ACCC"})
    [event] = connector.parse_webhook(body=claim.encode(), headers={})
    assert (event.subject, event.reference, event.provider_reference) == (
        "deposit",
        deposit.reference,
        deposit.provider_reference,
    )
    assert event.dedup_key == f"{deposit.provider_reference}:RCVD"
    assert event.result.status == PENDING


# --- cancellation ------------------------------------------------------------------------------


def test_an_open_payment_is_cancelled_at_the_bank_and_can_no_longer_be_approved(sandbox):
    player = make_player()
    body = start_deposit(player, "18.00")
    deposit = Deposit.objects.get(reference=body["reference"])
    connector = adapter_for(deposit.provider)

    result = connector.cancel_payment(deposit=deposit)
    assert (result.status, result.provider_reference) == (CANCELLED, deposit.provider_reference)
    assert "finished" in httpx.get(body["redirect_url"]).text
    httpx.post(body["redirect_url"], data={"action": "approve"})
    assert bank_payment(deposit.reference).status == "cancelled"
    # A second cancellation is refused by the bank (405) and reports the status as it is.
    assert connector.cancel_payment(deposit=deposit).status == CANCELLED
    deposit_status(deposit.reference, "cancelled")


def test_a_settled_payment_cannot_be_cancelled_and_reports_its_settlement(sandbox):
    player = make_player()
    body = start_deposit(player, "20.01")
    deposit = Deposit.objects.get(reference=body["reference"])
    result = adapter_for(deposit.provider).cancel_payment(deposit=deposit)
    assert result.status == SUCCEEDED
    assert result.amount_received == Decimal("20.01")


# --- payouts and refunds -----------------------------------------------------------------------


IBAN = {"kind": "iban", "identifier": "DE89 3704 0044 0532 0130 00", "holder_name": "Ann Example"}


def withdraw(player, amount):
    client = player_client(player)
    instrument = client.post("/api/v1/payout-instruments", IBAN, format="json")
    assert instrument.status_code == 201, instrument.json()
    response = client.post(
        "/api/v1/withdrawals",
        {"instrument": instrument.json()["id"], "amount": amount, "currency": "EUR"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key(),
    )
    assert response.status_code == 201, response.json()
    return response.json()


def withdrawal_status(reference, status):
    return wait_for(
        lambda: Withdrawal.objects.filter(reference=reference, status=status).first(),
        what=f"withdrawal {reference} to be {status}",
    )


def test_a_payout_is_a_credit_transfer_from_the_operators_account_without_a_redirect(sandbox):
    provider = sandbox["berlin_group"]
    without_minimal_play_rule()
    player = make_player()
    fund(player, "100.00")
    body = withdraw(player, "40.00")
    withdrawal = withdrawal_status(body["reference"], "paid")
    assert (cash(player), held(player)) == (Decimal("60.00"), Decimal(0))

    payment = bank_payment(withdrawal.reference)
    assert withdrawal.provider_reference == payment.sandbox_id
    assert (payment.kind, payment.data["product"]) == ("payout", "sepa-credit-transfers")
    assert payment.data["initiation"] == {
        "endToEndIdentification": withdrawal.reference,
        "debtorAccount": {"iban": provider.options["creditor_iban"]},
        "instructedAmount": {"currency": "EUR", "amount": "40.00"},
        "creditorAccount": {"iban": "DE89370400440532013000"},
        "creditorName": "Ann Example",
        "remittanceInformationUnstructured": withdrawal.reference,
    }
    assert payment.data["received"]["PSU-Corporate-ID"] == provider.options["corporate_id"]
    assert (
        "psu-corporate-id"
        in bank.signature_params(payment.data["received"]["Signature"])["headers"]
    )
    assert selectors.ledger_problems() == []


def test_a_rejected_payout_fails_and_gives_the_money_back(sandbox):
    without_minimal_play_rule()
    player = make_player()
    fund(player, "100.00")
    body = withdraw(player, "40.06")
    withdrawal = withdrawal_status(body["reference"], "failed")
    assert (withdrawal.decline_code, withdrawal.decline_kind) == ("AC04", "hard")
    assert (cash(player), held(player)) == (Decimal("100.00"), Decimal(0))


def test_a_refund_goes_back_to_the_account_the_bank_says_paid(sandbox):
    player = make_player()
    body = start_deposit(player, "50.00")
    httpx.post(body["redirect_url"], data={"action": "approve", "payer": "NL91ABNA0417164300"})
    deposit = deposit_status(body["reference"], "succeeded")
    operator = get_user_model().objects.create(username="finance", is_staff=True)

    refund = services.refund_deposit(
        deposit=deposit, amount="20.00", actor=operator, reason="asked"
    )
    assert refund.status == "succeeded"
    payment = bank_payment(refund.reference)
    assert payment.data["initiation"]["creditorAccount"] == {"iban": "NL91ABNA0417164300"}
    assert payment.data["initiation"]["instructedAmount"] == {"currency": "EUR", "amount": "20.00"}
    deposit.refresh_from_db()
    assert (deposit.status, deposit.refunded_amount) == ("partially_refunded", Decimal("20.00"))
    assert cash(player) == Decimal("30.00")
    assert selectors.ledger_problems() == []
