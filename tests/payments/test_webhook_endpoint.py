"""The webhook endpoint, whatever it is sent: never a 500, nothing processed without a valid
signature, and an unsigned sender cannot fill the inbox."""

import hashlib

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments import services
from payments.models import ProviderEventKey, WebhookEvent
from payments.services.inbox import REJECTED_BODY_KEPT_BYTES

pytestmark = pytest.mark.django_db

SIGNATURE_HEADERS = [
    "Stripe-Signature",
    "BTCPay-Sig",
    "Authorization",
    "Digest",
    "Signature",
    "X-Request-ID",
    "Content-Length",
    "Card-Signature",
    "OB-Signature",
]
CONTENT_TYPES = [
    "application/json",
    "application/x-www-form-urlencoded",
    "application/json; charset=utf-8",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
]
SIGNATURE_FIELDS = [b"md5sig", b"sha2sig", b"hmacSignature", b"status", b"transaction_id"]

header_values = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(min_codepoint=128, max_codepoint=0x2FFF), max_size=20),
    st.from_regex(r"t=[0-9]{1,12},v1=[0-9a-f]{0,64}", fullmatch=True),
    st.just("sha256=" + "0" * 64),
)
bodies = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=512).map(str.encode),
    st.builds(
        lambda field, value: field + b"=" + value.encode("utf-8", "surrogatepass"),
        st.sampled_from(SIGNATURE_FIELDS),
        st.text(max_size=40),
    ),
    st.just(b'{"id": "evt_1", "object": "event", "type": "payment_intent.succeeded"}'),
    st.just(b'{"live":"false","notificationItems":[{"NotificationRequestItem":{}}]}'),
    st.just(b"{\x00}"),
    st.just(b"\xff\xfe\xfa"),
)


@pytest.fixture
def sandbox_providers():
    return services.ensure_sandbox_providers(base_url="http://testserver")


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    index=st.integers(0, 4),
    body=bodies,
    content_type=st.sampled_from(CONTENT_TYPES),
    headers=st.dictionaries(st.sampled_from(SIGNATURE_HEADERS), header_values, max_size=3),
)
def test_random_deliveries_never_answer_500_and_are_never_processed(
    sandbox_providers, index, body, content_type, headers
):
    provider = sandbox_providers[index]
    headers.pop("Content-Length", None)
    last = WebhookEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    response = Client(raise_request_exception=False).generic(
        "POST",
        f"/api/v1/payments/webhooks/{provider.code}",
        data=body,
        content_type=content_type,
        headers=headers,
    )
    assert response.status_code in (200, 400, 401, 413, 415), (
        response.status_code,
        response.content[:300],
    )
    stored = list(WebhookEvent.objects.filter(pk__gt=last))
    assert len(stored) <= 1
    if response.status_code != 200:
        assert response.json()["error"]["code"]
        # A refused delivery is kept, if at all, as a rejected record that is never processed.
        assert all(not e.is_signature_valid for e in stored)
        assert all(e.outcome == WebhookEvent.Outcome.REJECTED for e in stored)
    assert not ProviderEventKey.objects.exists()


def test_a_large_unsigned_body_is_kept_as_its_first_kilobyte_and_digest(sandbox_providers):
    stripe = next(p for p in sandbox_providers if p.protocol == "stripe")
    body = b'{"id": "evt_x", "pad": "' + b"a" * 100_000 + b'"}'
    response = Client().post(
        f"/api/v1/payments/webhooks/{stripe.code}",
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": "t=1,v1=00"},
    )
    assert response.status_code == 401
    event = WebhookEvent.objects.get()
    assert (event.is_signature_valid, event.outcome) == (False, WebhookEvent.Outcome.REJECTED)
    assert len(event.body.encode()) == REJECTED_BODY_KEPT_BYTES
    assert (event.body_size, event.body_sha256) == (len(body), hashlib.sha256(body).hexdigest())


def test_a_body_over_the_limit_is_refused_before_it_is_read(sandbox_providers, settings):
    settings.PAYMENTS_WEBHOOK_MAX_BODY_BYTES = 1000
    stripe = next(p for p in sandbox_providers if p.protocol == "stripe")
    response = Client().post(
        f"/api/v1/payments/webhooks/{stripe.code}",
        data=b"{" + b" " * 2000 + b"}",
        content_type="application/json",
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "webhook_too_large"
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [(b'{"a": "\x00"}', "webhook_refused"), (b'{"a": "\xff"}', "webhook_refused")],
)
def test_nul_bytes_and_bad_encodings_are_refused_with_nothing_stored(sandbox_providers, body, code):
    stripe = next(p for p in sandbox_providers if p.protocol == "stripe")
    response = Client().post(
        f"/api/v1/payments/webhooks/{stripe.code}", data=body, content_type="application/json"
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert not WebhookEvent.objects.exists()


def test_a_content_type_the_protocol_never_sends_is_refused(sandbox_providers):
    stripe = next(p for p in sandbox_providers if p.protocol == "stripe")
    response = Client().post(
        f"/api/v1/payments/webhooks/{stripe.code}", data=b"a=b", content_type="text/plain"
    )
    assert response.status_code == 415
    assert not WebhookEvent.objects.exists()


def test_an_unknown_provider_is_a_json_404():
    response = Client().post(
        "/api/v1/payments/webhooks/nobody", data=b"{}", content_type="application/json"
    )
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
