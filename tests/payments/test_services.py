"""Service-level behaviour without HTTP: state machines moving money in the ledger."""

import json
from decimal import Decimal

import pytest
from django.utils import timezone

from compliance.models import KycLevel
from payments import errors, services
from payments.instruments import instrument_fingerprint
from payments.models import (
    Chargeback,
    Deposit,
    PaymentTransition,
    WebhookEvent,
    Withdrawal,
    WithdrawalApproval,
)
from payments.providers.base import PayerInstrument, ProviderResult
from tests.payments.factories import (
    StaffFactory,
    cash,
    fund,
    held,
    key,
    make_player,
    reviewer,
    without_minimal_play_rule,
)
from tests.payments.scripted import install_scripted_provider, scripted_body
from wallets import errors as wallet_errors
from wallets import selectors
from wallets import services as ledger
from wallets.models import Account, JournalEntry

pytestmark = pytest.mark.django_db
D = Deposit.Status
W = Withdrawal.Status


@pytest.fixture
def providers(monkeypatch):
    """The sandbox providers by protocol (unreachable: these tests never call them), and the
    scripted one whose webhooks carry our own events."""
    without_minimal_play_rule()
    made = {p.protocol: p for p in services.ensure_sandbox_providers(base_url="http://127.0.0.1:9")}
    made["scripted"] = install_scripted_provider(monkeypatch)
    return made


def open_deposit(player, provider, amount="50.00", currency="EUR"):
    """A deposit as create_deposit leaves it once the provider accepted it (no money yet)."""
    deposit = Deposit.objects.create(
        reference=services.new_reference("dep"),
        player=player,
        provider=provider,
        method=provider.methods.first(),
        amount=Decimal(amount),
        currency_id=currency,
        idempotency_key=key(),
        request_hash="x",
        expires_at=timezone.now() + timezone.timedelta(minutes=30),
    )
    return services.apply_deposit_result(
        deposit_id=deposit.pk,
        result=ProviderResult(status="pending", provider_reference="pay_1"),
        source="provider",
    )


def scripted_webhook(deposit, status, *, key_suffix=""):
    body = scripted_body(
        subject="deposit",
        type=f"payment.{status}",
        key=f"{deposit.reference}:{status}{key_suffix}",
        reference=deposit.reference,
        status=status,
        amount=str(deposit.amount) if status == "succeeded" else "",
    )
    return body, {"Content-Type": "application/json"}


def deliver(provider, body, headers):
    event = services.receive_webhook(provider_code=provider.code, body=body, headers=headers)
    return services.process_webhook(event_id=event.pk)


# --- deposits and the webhook inbox -------------------------------------------------------------


def test_succeeded_webhook_credits_the_deposit_once_and_a_duplicate_is_a_no_op(providers):
    player = make_player()
    deposit = open_deposit(player, providers["scripted"])
    body, headers = scripted_webhook(deposit, "succeeded")

    first = deliver(providers["scripted"], body, headers)
    second = deliver(providers["scripted"], body, headers)

    assert (first.outcome, second.outcome) == ("applied", "no_change")
    deposit.refresh_from_db()
    assert deposit.status == D.SUCCEEDED
    assert cash(player) == Decimal("50.00")
    assert JournalEntry.objects.filter(external_reference=deposit.reference).count() == 1
    assert selectors.ledger_problems() == []


def test_a_late_pending_or_failed_event_never_moves_a_succeeded_deposit_back(providers):
    player = make_player()
    scripted = providers["scripted"]
    deposit = open_deposit(player, scripted)
    deliver(scripted, *scripted_webhook(deposit, "succeeded"))
    late_pending = deliver(scripted, *scripted_webhook(deposit, "pending"))
    late_failed = deliver(scripted, *scripted_webhook(deposit, "failed"))
    deposit.refresh_from_db()
    assert deposit.status == D.SUCCEEDED
    assert (late_pending.outcome, late_failed.outcome) == ("no_change", "no_change")
    assert cash(player) == Decimal("50.00")


def test_a_webhook_with_a_bad_signature_is_stored_and_never_processed(providers):
    import stripe

    card = providers["stripe"]
    player = make_player()
    deposit = open_deposit(player, card)
    body = json.dumps(
        {
            "id": "evt_1",
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1", "metadata": {"reference": deposit.reference}}},
        }
    ).encode()
    # Signed the official SDK's way, with a secret that is not ours.
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
            body.decode(), "whsec_not_ours"
        ),
    }

    event = services.receive_webhook(provider_code=card.code, body=body, headers=headers)
    processed = services.process_webhook(event_id=event.pk)

    assert processed.is_signature_valid is False
    assert processed.outcome == WebhookEvent.Outcome.REJECTED
    assert processed.processed_at is None
    assert processed.body == body.decode()
    deposit.refresh_from_db()
    assert deposit.status == D.PENDING
    assert cash(player) == Decimal(0)


def test_every_deposit_transition_is_recorded_with_its_source(providers):
    player = make_player()
    deposit = open_deposit(player, providers["scripted"])
    event = deliver(providers["scripted"], *scripted_webhook(deposit, "succeeded"))
    rows = list(
        PaymentTransition.objects.filter(deposit=deposit).values_list(
            "from_status", "to_status", "source", "webhook"
        )
    )
    assert rows == [
        (D.CREATED, D.PENDING, "provider", None),
        (D.PENDING, D.SUCCEEDED, "webhook", event.pk),
    ]


def test_underpaid_crypto_is_held_for_review_when_configured_then_accepted(providers, settings):
    settings.PAYMENTS_CRYPTO_UNDERPAID = "review"
    player = make_player()
    deposit = open_deposit(player, providers["btcpay"], amount="0.01000000", currency="BTC")
    services.apply_deposit_result(
        deposit_id=deposit.pk,
        result=ProviderResult(status="succeeded", amount_received=Decimal("0.00600000")),
        source="webhook",
    )
    deposit.refresh_from_db()
    assert (deposit.status, deposit.is_held_for_review) == (D.PENDING, True)
    assert cash(player, "BTC") == Decimal(0)

    operator = StaffFactory()
    services.accept_held_deposit(deposit=deposit, actor=operator, reason="customer confirmed")
    deposit.refresh_from_db()
    assert (deposit.status, deposit.amount_received) == (D.SUCCEEDED, Decimal("0.006"))
    assert cash(player, "BTC") == Decimal("0.006")


# --- withdrawals ---------------------------------------------------------------------------------


def iban_instrument(player):
    return services.add_payout_instrument(
        player=player,
        kind="iban",
        identifier="MT84 MALT 0110 0001 2345 MTLC AST0 01S",
        holder_name="A Player",
    )


def test_withdrawal_request_holds_the_money_and_small_amounts_are_approved_at_once(providers):
    player = make_player()
    fund(player, "300.00")
    withdrawal = services.request_withdrawal(
        player=player,
        instrument=iban_instrument(player),
        amount="100.00",
        currency="EUR",
        idempotency_key=key(),
    )
    assert withdrawal.status == W.APPROVED
    assert (cash(player), held(player)) == (Decimal("200.00"), Decimal("100.00"))


def test_withdrawal_over_the_balance_is_refused_and_writes_nothing(providers):
    player = make_player()
    fund(player, "30.00")
    with pytest.raises(wallet_errors.InsufficientFunds):
        services.request_withdrawal(
            player=player,
            instrument=iban_instrument(player),
            amount="30.01",
            currency="EUR",
            idempotency_key=key(),
        )
    assert not Withdrawal.objects.exists()
    assert (cash(player), held(player)) == (Decimal("30.00"), Decimal(0))


def test_compliance_refusal_stops_the_withdrawal_before_any_money_moves(providers):
    player = make_player(level=KycLevel.BASIC)
    fund(player, "100.00")
    with pytest.raises(errors.PaymentRefused) as refused:
        services.request_withdrawal(
            player=player,
            instrument=iban_instrument(player),
            amount="10.00",
            currency="EUR",
            idempotency_key=key(),
        )
    assert "kyc_verification_required" in refused.value.details["reasons"]
    assert not Withdrawal.objects.exists()
    assert cash(player) == Decimal("100.00")


def test_same_key_same_request_returns_the_withdrawal_and_a_different_body_conflicts(providers):
    player = make_player()
    fund(player, "300.00")
    instrument = iban_instrument(player)
    idem = key()
    first = services.request_withdrawal(
        player=player, instrument=instrument, amount="10.00", currency="EUR", idempotency_key=idem
    )
    again = services.request_withdrawal(
        player=player, instrument=instrument, amount="10.00", currency="EUR", idempotency_key=idem
    )
    assert again.pk == first.pk
    with pytest.raises(wallet_errors.IdempotencyConflict):
        services.request_withdrawal(
            player=player,
            instrument=instrument,
            amount="11.00",
            currency="EUR",
            idempotency_key=idem,
        )
    assert held(player) == Decimal("10.00")


def big_withdrawal(providers, amount="6000.00"):
    player = make_player(level=KycLevel.ENHANCED)
    fund(player, "20000.00")
    return services.request_withdrawal(
        player=player,
        instrument=iban_instrument(player),
        amount=amount,
        currency="EUR",
        idempotency_key=key(),
    )


def test_four_eyes_the_same_staff_user_cannot_approve_twice(providers):
    withdrawal = big_withdrawal(providers)
    assert (withdrawal.status, withdrawal.required_approvals) == (W.IN_REVIEW, 2)
    first, second = reviewer(), reviewer()

    services.approve_withdrawal(withdrawal=withdrawal, approver=first, reason="docs ok")
    withdrawal.refresh_from_db()
    assert withdrawal.status == W.IN_REVIEW
    with pytest.raises(errors.FourEyesViolation):
        services.approve_withdrawal(withdrawal=withdrawal, approver=first)
    assert WithdrawalApproval.objects.filter(withdrawal=withdrawal).count() == 1

    services.approve_withdrawal(withdrawal=withdrawal, approver=second, reason="agree")
    withdrawal.refresh_from_db()
    assert withdrawal.status == W.APPROVED


def test_review_below_the_four_eyes_threshold_needs_one_approval(providers):
    withdrawal = big_withdrawal(providers, amount="600.00")
    assert (withdrawal.status, withdrawal.required_approvals) == (W.IN_REVIEW, 1)
    assert withdrawal.review_reasons == ["amount_over_review_threshold"]
    services.approve_withdrawal(withdrawal=withdrawal, approver=reviewer())
    withdrawal.refresh_from_db()
    assert withdrawal.status == W.APPROVED


def test_only_staff_with_the_review_permission_may_approve_or_reject(providers):
    withdrawal = big_withdrawal(providers)
    for outsider in (StaffFactory(is_staff=False), StaffFactory()):
        with pytest.raises(errors.NotStaff):
            services.approve_withdrawal(withdrawal=withdrawal, approver=outsider)
        with pytest.raises(errors.NotStaff):
            services.reject_withdrawal(withdrawal=withdrawal, actor=outsider, reason="no")
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.approvals.count()) == ("in_review", 0)


def test_rejecting_releases_the_hold_and_needs_a_reason(providers):
    withdrawal = big_withdrawal(providers)
    officer = reviewer()
    with pytest.raises(wallet_errors.MissingReason):
        services.reject_withdrawal(withdrawal=withdrawal, actor=officer, reason=" ")
    services.reject_withdrawal(withdrawal=withdrawal, actor=officer, reason="source of funds")
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.rejection_reason) == (W.REJECTED, "source of funds")
    assert (cash(withdrawal.player), held(withdrawal.player)) == (Decimal("20000.00"), Decimal(0))
    last = withdrawal.transitions.last()
    assert (last.from_status, last.to_status, last.actor, last.reason) == (
        W.IN_REVIEW,
        W.REJECTED,
        officer,
        "source of funds",
    )


def test_the_player_can_cancel_until_processing_but_not_after(providers):
    withdrawal = big_withdrawal(providers, amount="600.00")
    player = withdrawal.player
    services.cancel_withdrawal(withdrawal=withdrawal, player=player)
    withdrawal.refresh_from_db()
    assert withdrawal.status == W.CANCELLED
    assert held(player) == Decimal(0)
    with pytest.raises(errors.InvalidTransition):
        services.cancel_withdrawal(withdrawal=withdrawal, player=player)


def processing_withdrawal(providers):
    player = make_player()
    fund(player, "100.00")
    withdrawal = services.request_withdrawal(
        player=player,
        instrument=iban_instrument(player),
        amount="40.00",
        currency="EUR",
        idempotency_key=key(),
    )
    withdrawal = Withdrawal.objects.get(pk=withdrawal.pk)
    withdrawal.start_processing(started_at=timezone.now())
    withdrawal.save()
    return withdrawal


def test_paid_settles_the_hold_to_the_providers_clearing_account(providers):
    withdrawal = processing_withdrawal(providers)
    with pytest.raises(errors.InvalidTransition):
        services.cancel_withdrawal(withdrawal=withdrawal, player=withdrawal.player)
    services.apply_withdrawal_result(
        withdrawal_id=withdrawal.pk,
        result=ProviderResult(status="succeeded", provider_reference="po_1"),
        source="webhook",
    )
    services.apply_withdrawal_result(
        withdrawal_id=withdrawal.pk, result=ProviderResult(status="failed"), source="webhook"
    )
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.provider_reference) == (W.PAID, "po_1")
    assert (cash(withdrawal.player), held(withdrawal.player)) == (Decimal("60.00"), Decimal(0))
    settle = JournalEntry.objects.get(
        kind="withdrawal_settle", external_reference=withdrawal.reference
    )
    clearing = settle.postings.get(account__kind=Account.Kind.PROVIDER_CLEARING)
    assert (clearing.account.system_code, clearing.amount) == ("sandbox-bank", Decimal("40.00"))
    assert selectors.ledger_problems() == []


def test_a_failed_payout_gives_the_money_back(providers):
    withdrawal = processing_withdrawal(providers)
    services.apply_withdrawal_result(
        withdrawal_id=withdrawal.pk,
        result=ProviderResult(status="failed", decline_code="AC04", decline_kind="hard"),
        source="webhook",
    )
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.decline_code, withdrawal.decline_kind) == (
        W.FAILED,
        "AC04",
        "hard",
    )
    assert (cash(withdrawal.player), held(withdrawal.player)) == (Decimal("100.00"), Decimal(0))


# --- chargebacks -------------------------------------------------------------------------------


def succeeded_deposit(player, providers, amount="80.00"):
    deposit = open_deposit(player, providers["stripe"], amount=amount)
    return services.apply_deposit_result(
        deposit_id=deposit.pk, result=ProviderResult(status="succeeded"), source="webhook"
    )


def test_chargeback_takes_the_players_cash_and_is_idempotent(providers):
    player = make_player()
    deposit = succeeded_deposit(player, providers)
    first = services.record_chargeback(
        deposit=deposit, amount="80.00", provider_reference="cb_1", reason="fraud"
    )
    again = services.record_chargeback(deposit=deposit, amount="80.00", provider_reference="cb_1")
    assert again.pk == first.pk
    assert (first.amount, first.written_off) == (Decimal("80.00"), Decimal(0))
    assert cash(player) == Decimal(0)
    assert JournalEntry.objects.filter(kind="chargeback").count() == 1
    assert selectors.ledger_problems() == []


def test_chargeback_bigger_than_the_cash_books_the_shortfall_to_write_off(providers):
    player = make_player()
    deposit = succeeded_deposit(player, providers)
    from wallets import services as ledger

    ledger.debit_bet(player=player, currency="EUR", amount="70.00", idempotency_key=key())
    chargeback = services.record_chargeback(
        deposit=deposit, amount="80.00", provider_reference="cb_2"
    )
    assert chargeback.written_off == Decimal("70.00")
    assert cash(player) == Decimal(0)
    entry = JournalEntry.objects.get(kind="chargeback")
    legs = sorted((p.account.kind, p.amount) for p in entry.postings.select_related("account"))
    assert legs == [
        ("player_cash", Decimal("-10.00")),
        ("provider_clearing", Decimal("80.00")),
        ("write_off", Decimal("-70.00")),
    ]
    assert Chargeback.objects.count() == 1
    assert selectors.ledger_problems() == []


def test_a_crypto_deposit_cannot_be_refunded_and_nothing_is_written(providers):
    player = make_player()
    deposit = open_deposit(player, providers["btcpay"], amount="0.01000000", currency="BTC")
    services.apply_deposit_result(
        deposit_id=deposit.pk, result=ProviderResult(status="succeeded"), source="webhook"
    )
    with pytest.raises(errors.RefundNotSupported):
        services.refund_deposit(deposit=deposit, amount="0.005", actor=StaffFactory(), reason="x")
    assert not deposit.refunds.exists()
    assert cash(player, "BTC") == Decimal("0.01")
    assert not JournalEntry.objects.filter(kind="refund").exists()


# --- payment instruments in the ledger (what compliance's instrument rules read) ---------------

MALTESE_IBAN = "MT84MALT011000012345MTLCAST001S"


def paid_by(deposit, iban):
    """What a bank's connector reports for a payment from `iban`."""
    return services.apply_deposit_result(
        deposit_id=deposit.pk,
        result=ProviderResult(
            status="succeeded", payer_instrument=PayerInstrument.of("iban", iban)
        ),
        source="webhook",
    )


def test_a_deposit_entry_carries_the_payers_iban_fingerprint_not_the_iban(providers):
    player = make_player()
    deposit = open_deposit(player, providers["berlin_group"])
    paid_by(deposit, "MT84 MALT 0110 0001 2345 MTLC AST0 01S")

    deposit.refresh_from_db()
    expected = instrument_fingerprint("iban", MALTESE_IBAN)
    assert (deposit.payer_instrument_type, deposit.payer_instrument_fingerprint) == (
        "iban",
        expected,
    )
    entry = JournalEntry.objects.get(kind="deposit", external_reference=deposit.reference)
    assert entry.metadata["instrument_fingerprint"] == expected
    assert entry.metadata["instrument_type"] == "iban"
    assert "MALT" not in json.dumps(entry.metadata)


def test_a_deposit_without_a_named_payer_writes_no_instrument_keys(providers):
    player = make_player()
    deposit = open_deposit(player, providers["scripted"])
    deliver(providers["scripted"], *scripted_webhook(deposit, "succeeded"))
    entry = JournalEntry.objects.get(kind="deposit", external_reference=deposit.reference)
    assert entry.metadata == {"provider_reference": "pay_1"}


def test_a_deposit_held_for_a_frozen_player_keeps_its_instrument_until_accepted(providers):
    player = make_player()
    officer = StaffFactory()
    deposit = open_deposit(player, providers["berlin_group"])
    ledger.freeze_player(player=player, actor=officer, reason="investigation")
    paid_by(deposit, MALTESE_IBAN)
    deposit.refresh_from_db()
    assert deposit.is_held_for_review and deposit.payer_instrument_type == "iban"
    assert not JournalEntry.objects.filter(external_reference=deposit.reference).exists()

    ledger.unfreeze_player(player=player, actor=officer, reason="cleared")
    services.accept_held_deposit(deposit=deposit, actor=officer, reason="cleared")
    entry = JournalEntry.objects.get(kind="deposit", external_reference=deposit.reference)
    assert entry.metadata["instrument_fingerprint"] == deposit.payer_instrument_fingerprint
    assert entry.metadata["instrument_type"] == "iban"


def test_withdrawal_hold_and_settle_entries_carry_the_payout_instruments_fingerprint(providers):
    withdrawal = processing_withdrawal(providers)
    services.apply_withdrawal_result(
        withdrawal_id=withdrawal.pk,
        result=ProviderResult(status="succeeded", provider_reference="po_1"),
        source="webhook",
    )
    expected = {
        "instrument_fingerprint": instrument_fingerprint("iban", MALTESE_IBAN),
        "instrument_type": "iban",
    }
    hold, settle = (
        JournalEntry.objects.get(kind=kind, external_reference=withdrawal.reference)
        for kind in ("withdrawal_hold", "withdrawal_settle")
    )
    assert hold.metadata == expected
    assert settle.metadata == {"provider_reference": "po_1", **expected}
    assert withdrawal.instrument.fingerprint == expected["instrument_fingerprint"]
