"""Payments feed compliance's instrument rules: a deposit paid from an IBAN and a withdrawal
to the same IBAN by another player raise the shared-instrument alert, end to end through the
payments services, the provider adapter and the sandbox bank (served in-process)."""

import httpx
import pytest
from django.test import Client

from compliance import monitoring
from compliance.models import Alert, InstrumentUse
from payments import services
from payments.instruments import instrument_fingerprint
from payments.models import Deposit
from payments.providers.base import PaymentAdapter
from payments.sandbox import core
from payments.sandbox.models import SandboxPayment
from payments.sandbox.protocols import protocol_module
from tests.compliance.factories import make_player
from tests.payments.factories import fund, key
from wallets.models import JournalEntry

pytestmark = pytest.mark.django_db

SHARED_IBAN = "MT84 MALT 0110 0001 2345 MTLC AST0 01S"


class DjangoTransport(httpx.BaseTransport):
    """Hands the adapter's HTTP requests to this Django (the sandbox views) in-process, in
    the test's transaction."""

    def __init__(self):
        self.client = Client()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.client.generic(
            request.method,
            request.url.raw_path.decode(),
            data=request.read(),
            content_type=request.headers.get("content-type", ""),
            headers={
                k: v
                for k, v in request.headers.items()
                if k.lower() not in ("content-type", "content-length", "host")
            },
        )
        return httpx.Response(
            response.status_code, headers=dict(response.items()), content=response.content
        )


@pytest.fixture
def bank(monkeypatch):
    providers = {
        p.protocol: p for p in services.ensure_sandbox_providers(base_url="http://testserver")
    }
    monkeypatch.setattr(
        PaymentAdapter,
        "_client",
        lambda self, base_url=None: httpx.Client(
            base_url=base_url or self.provider.api_base_url, transport=DjangoTransport()
        ),
    )
    return providers["berlin_group"]


def pay_by_bank(bank, player, amount, *, iban=""):
    """A bank-transfer deposit: started at the sandbox bank (Berlin Group), approved on its
    consent page (from `iban` if the player names one), its status notification received and
    processed (the connector asks the bank for the status)."""
    deposit = services.create_deposit(
        player=player,
        method_code="bank_transfer",
        amount=amount,
        currency="EUR",
        idempotency_key=key(),
    )
    assert deposit.status == Deposit.Status.PENDING
    consent = Client().post(deposit.redirect_url, {"action": "approve", "payer": iban})
    assert consent.status_code == 302
    paid = SandboxPayment.objects.get(sandbox_id=deposit.provider_reference)
    [(body, headers)] = protocol_module("berlin_group").webhooks(
        paid, core.PAID, provider=bank, signed_right=True
    )
    event = services.receive_webhook(provider_code=bank.code, body=body, headers=headers)
    services.process_webhook(event_id=event.pk)
    deposit.refresh_from_db()
    assert deposit.status == Deposit.Status.SUCCEEDED
    return JournalEntry.objects.get(kind="deposit", external_reference=deposit.reference)


def shared_alerts(player):
    return Alert.objects.filter(player=player, rule__kind="shared_instrument")


def test_a_deposit_from_an_iban_another_player_withdraws_to_raises_the_shared_instrument_alert(
    bank,
):
    owner, payer, stranger = make_player(), make_player(), make_player()
    fund(owner, "200.00")
    instrument = services.add_payout_instrument(
        player=owner, kind="iban", identifier=SHARED_IBAN, holder_name="Owner"
    )
    withdrawal = services.request_withdrawal(
        player=owner, instrument=instrument, amount="50.00", currency="EUR", idempotency_key=key()
    )
    hold = JournalEntry.objects.get(kind="withdrawal_hold", external_reference=withdrawal.reference)
    monitoring.monitor_entry(entry_id=hold.pk)
    assert not shared_alerts(owner).exists()  # one player on the IBAN so far

    deposit_entry = pay_by_bank(bank, payer, "30.00", iban=SHARED_IBAN)
    stranger_entry = pay_by_bank(bank, stranger, "30.00")
    monitoring.monitor_entry(entry_id=deposit_entry.pk)
    monitoring.monitor_entry(entry_id=stranger_entry.pk)
    monitoring.monitor_entry(entry_id=hold.pk)

    fingerprint = instrument_fingerprint("iban", SHARED_IBAN)
    alert = shared_alerts(payer).get()
    assert alert.details["instrument"] == fingerprint
    assert alert.details["instrument_type"] == "iban"
    assert alert.details["other_players"] == [owner.pk]
    assert list(alert.entries.values_list("pk", flat=True)) == [deposit_entry.pk]
    assert shared_alerts(owner).get().details["other_players"] == [payer.pk]
    # The stranger paid from the sandbox bank's own account for them: nobody else's.
    assert not shared_alerts(stranger).exists()
    assert stranger_entry.metadata["instrument_fingerprint"] != fingerprint
    assert set(
        InstrumentUse.objects.filter(fingerprint=fingerprint).values_list("player_id", flat=True)
    ) == {
        owner.pk,
        payer.pk,
    }


def test_the_same_player_paying_twice_from_the_sandbox_bank_is_one_instrument(bank):
    player = make_player()
    first = pay_by_bank(bank, player, "20.00")
    second = pay_by_bank(bank, player, "25.00")
    assert first.metadata["instrument_fingerprint"] == second.metadata["instrument_fingerprint"]
    assert first.metadata["instrument_type"] == "iban"
    monitoring.monitor_entry(entry_id=second.pk)
    assert not shared_alerts(player).exists()
