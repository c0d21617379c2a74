"""A connector whose "protocol" is the test itself: it trusts the body and reads our own
ProviderEvents from it. Tests of the services' invariants use it so they do not depend on a
provider's format (each connector's own tests cover that)."""

import json
from decimal import Decimal

from payments import providers
from payments.models import PaymentMethod, PaymentProvider
from payments.providers.base import (
    DISPUTE,
    PENDING,
    DisputeInfo,
    PaymentAdapter,
    ProviderEvent,
    ProviderResult,
)

CODE = "scripted-psp"


class ScriptedConnector(PaymentAdapter):
    """Trusts the body (the test signs nothing) and reads events from it."""

    protocol = "scripted"

    def verify_webhook(self, *, body, headers):
        return None

    def start_payment(self, *, deposit, notify_url, return_url, payment_method=None):
        return ProviderResult(status=PENDING, provider_reference=f"psp-{deposit.reference}")

    def refund(self, *, refund, notify_url):
        return ProviderResult(status=PENDING, provider_reference=f"psp-{refund.reference}")

    def parse_webhook(self, *, body, headers):
        raw = json.loads(body)
        if raw["subject"] == DISPUTE:
            return [
                ProviderEvent(
                    subject=DISPUTE,
                    event_type=raw["type"],
                    dedup_key=raw["key"],
                    reference=raw["reference"],
                    dispute=DisputeInfo(
                        action=raw["action"],
                        dispute_reference=raw["dispute"],
                        amount=Decimal(raw["amount"]) if raw["amount"] else None,
                    ),
                )
            ]
        result = ProviderResult(
            status=raw["status"], amount_received=Decimal(raw["amount"]) if raw["amount"] else None
        )
        return [
            ProviderEvent(
                subject=raw["subject"],
                event_type=raw["type"],
                dedup_key=raw["key"],
                reference=raw["reference"],
                result=result,
            )
        ]


def install_scripted_provider(monkeypatch, *, kind="card") -> PaymentProvider:
    monkeypatch.setitem(providers.CONNECTORS, "scripted", ScriptedConnector)
    provider = PaymentProvider.objects.create(
        code=CODE,
        name="Scripted PSP",
        kind=kind,
        protocol="scripted",
        api_base_url="http://127.0.0.1:9/",
    )
    provider.currencies.set(["EUR"])
    method = PaymentMethod.objects.create(code="scripted", name="Scripted", provider=provider)
    method.currencies.set(["EUR"])
    return provider


def scripted_body(**fields) -> bytes:
    return json.dumps(fields).encode()
