"""Money stays right whatever order and however often a provider's events arrive.

Hypothesis generates histories of one deposit: provider events (success, failure, refund
succeeded or failed, chargebacks of two disputes, their reversals), each possibly delivered
again — byte for byte, or with a field no signature covers changed — and operator refunds in
between. Every delivery goes through the real inbox (`store_webhook` + `process_webhook`), on
PostgreSQL; only the protocol is replaced, by a scripted connector that reads its events from
the body, so what is tested is the services' invariants, not a provider's format (each
connector's own tests cover that). After each history, the player's cash, the provider's
clearing account and write-offs equal a reference model, no chargeback total exceeds what
was credited, and the ledger balances.
"""

import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments import services
from payments.models import Chargeback, Deposit, Refund
from payments.providers.base import (
    DEPOSIT,
    DISPUTE,
    DISPUTE_CHARGEBACK,
    DISPUTE_REVERSED,
    FAILED,
    REFUND,
    SUCCEEDED,
)
from tests.payments.factories import StaffFactory, make_player
from tests.payments.scripted import install_scripted_provider
from wallets import services as ledger
from wallets.models import Account, Posting
from wallets.selectors import ledger_problems

pytestmark = pytest.mark.django_db

AMOUNT = Decimal("20.00")


@pytest.fixture
def scripted(monkeypatch):
    return install_scripted_provider(monkeypatch)


# --- the reference model ---------------------------------------------------------------------


@dataclass
class Model:
    """What the money must be after each step (balances as deltas of this history)."""

    spare_cash: Decimal  # the player's cash from elsewhere before the deposit
    status: str = "pending"
    cash: Decimal = Decimal(0)
    clearing: Decimal = Decimal(0)
    write_off: Decimal = Decimal(0)
    refunded: Decimal = Decimal(0)
    refunds: dict = field(default_factory=dict)  # index -> [amount, state]
    # dispute -> [state held/applied/reversed, requested, booked, written_off]
    disputes: dict = field(default_factory=dict)
    seen: set = field(default_factory=set)

    @property
    def credited(self) -> bool:
        return self.status in ("succeeded", "partially_refunded", "refunded")

    def in_flight(self) -> Decimal:
        return sum((a for a, s in self.refunds.values() if s == "pending"), Decimal(0))

    def charged_back(self) -> Decimal:
        return sum((d[2] for d in self.disputes.values() if d[0] == "applied"), Decimal(0))

    def available(self) -> Decimal:
        left = AMOUNT - self.refunded - self.charged_back() - self.in_flight()
        return max(left, Decimal(0))

    def apply_chargeback(self, dispute):
        record = self.disputes[dispute]
        booked = min(record[1], self.available())
        from_player = min(self.spare_cash + self.cash, booked)
        self.cash -= from_player
        self.write_off -= booked - from_player
        self.clearing += booked
        record[0], record[2], record[3] = "applied", booked, booked - from_player

    def top_up(self):
        """Room freed: capped chargebacks take what did not fit, oldest first."""
        for record in self.disputes.values():
            if record[0] != "applied" or record[2] >= record[1]:
                continue
            extra = min(record[1] - record[2], self.available())
            if extra <= 0:
                return
            from_player = min(self.spare_cash + self.cash, extra)
            self.cash -= from_player
            self.write_off -= extra - from_player
            self.clearing += extra
            record[2] += extra
            record[3] += extra - from_player

    def step(self, event):
        kind = event[0]
        if kind == "refund_request":
            amount = event[1]
            if not self.credited or amount > self.available():
                return
            if self.spare_cash + self.cash < amount:
                return
            self.refunds[len(self.refunds)] = [amount, "pending"]
            self.cash -= amount
            self.clearing += amount
            return
        key = event_key(event)
        if key in self.seen:
            return
        if kind in ("refund_ok", "refund_fail"):
            refund = self.refunds.get(event[1])
            if refund is None:
                return  # no such refund yet: the inbox finds nothing and keeps no key
            self.seen.add(key)
            if kind == "refund_fail" and refund[1] == "succeeded":
                # Failed after it succeeded: returned, the money is the player's again.
                refund[1] = "returned"
                self.cash += refund[0]
                self.clearing -= refund[0]
                self.refunded -= refund[0]
                self.status = "partially_refunded" if self.refunded else "succeeded"
                self.top_up()
                return
            if refund[1] != "pending":
                return
            if kind == "refund_ok":
                refund[1] = "succeeded"
                self.refunded += refund[0]
                self.status = "refunded" if self.refunded >= AMOUNT else "partially_refunded"
            else:
                refund[1] = "failed"
                self.cash += refund[0]
                self.clearing -= refund[0]
                self.top_up()
            return
        self.seen.add(key)
        if kind == "success":
            if self.status == "pending":
                self.status = "succeeded"
                self.cash += AMOUNT
                self.clearing -= AMOUNT
                for dispute, record in self.disputes.items():
                    if record[0] == "held":
                        self.apply_chargeback(dispute)
        elif kind == "failure":
            if self.status == "pending":
                self.status = "failed"
        elif kind == "chargeback":
            dispute, amount = event[1], event[2]
            if dispute in self.disputes:
                return
            self.disputes[dispute] = ["held", amount or AMOUNT, Decimal(0), Decimal(0)]
            if self.credited:
                self.apply_chargeback(dispute)
        elif kind == "reversal":
            dispute = event[1]
            record = self.disputes.get(dispute)
            if record is None:
                self.disputes[dispute] = ["reversed", Decimal(0), Decimal(0), Decimal(0)]
            elif record[0] == "applied":
                booked, written_off = record[2], record[3]
                self.clearing -= booked
                self.cash += booked - written_off
                self.write_off += written_off
                record[0] = "reversed"
                self.top_up()
            elif record[0] == "held":
                record[0] = "reversed"


def event_key(event) -> str:
    kind = event[0]
    if kind in ("chargeback", "reversal"):
        return f"{kind}:{event[1]}"
    if kind in ("refund_ok", "refund_fail"):
        return f"{kind}:{event[1]}"
    return kind


# --- histories -------------------------------------------------------------------------------

amounts = st.sampled_from([Decimal("5.00"), Decimal("12.50"), Decimal("20.00"), None])
refund_amounts = st.sampled_from([Decimal("4.00"), Decimal("8.00"), Decimal("20.00")])
events = st.one_of(
    st.just(("success",)),
    st.just(("failure",)),
    st.tuples(st.just("chargeback"), st.sampled_from(["dp_1", "dp_2"]), amounts),
    st.tuples(st.just("reversal"), st.sampled_from(["dp_1", "dp_2"])),
    st.tuples(st.just("refund_request"), refund_amounts),
    st.tuples(st.sampled_from(["refund_ok", "refund_fail"]), st.integers(0, 1)),
)
# A delivery is sent once, twice, or again with a field no signature covers changed.
deliveries = st.tuples(events, st.sampled_from(["once", "twice", "tampered_unsigned"]))
histories = st.lists(deliveries, min_size=1, max_size=9)


def deliver(provider, deposit, event, refund_refs, salt=""):
    kind = event[0]
    body = {"reference": deposit.reference, "key": event_key(event), "amount": "", "noise": salt}
    if kind == "success":
        body.update(subject=DEPOSIT, type="payment.succeeded", status=SUCCEEDED, amount=str(AMOUNT))
    elif kind == "failure":
        body.update(subject=DEPOSIT, type="payment.failed", status=FAILED)
    elif kind in ("chargeback", "reversal"):
        body.update(
            subject=DISPUTE,
            type=f"dispute.{kind}",
            dispute=event[1],
            action=DISPUTE_CHARGEBACK if kind == "chargeback" else DISPUTE_REVERSED,
            amount=str(event[2]) if kind == "chargeback" and event[2] else "",
        )
    else:
        reference = refund_refs.get(event[1])
        if reference is None:
            reference = f"ref_missing_{event[1]}"
        body.update(
            subject=REFUND,
            type=f"refund.{kind}",
            reference=reference,
            status=SUCCEEDED if kind == "refund_ok" else FAILED,
        )
    # Keys are per deposit in reality (a provider's event ids are unique); keep them so here.
    body["key"] = f"{deposit.reference}:{body['key']}"
    stored = services.store_webhook(
        provider=provider,
        body=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        is_signature_valid=True,
    )
    services.process_webhook(event_id=stored.pk)


def balance_delta(deposit, *, kind, player=None) -> Decimal:
    postings = Posting.objects.filter(
        entry__external_reference=deposit.reference, account__kind=kind
    )
    if player is not None:
        postings = postings.filter(account__owner=player)
    return sum(postings.values_list("amount", flat=True), Decimal(0))


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories, spare_cash=st.sampled_from([Decimal(0), Decimal("7.00")]))
def test_any_order_and_duplication_of_provider_events_keeps_the_money_right(
    scripted, history, spare_cash
):
    actor = StaffFactory()
    player = make_player()
    if spare_cash:
        ledger.credit_deposit(
            player=player,
            currency="EUR",
            amount=spare_cash,
            provider_code="elsewhere",
            idempotency_key=f"spare:{uuid.uuid4()}",
        )
    deposit = services.create_deposit(
        player=player,
        method_code="scripted",
        amount=AMOUNT,
        currency="EUR",
        idempotency_key=str(uuid.uuid4()),
    )
    model = Model(spare_cash=spare_cash)
    refund_refs: dict[int, str] = {}
    for event, how in history:
        if event[0] == "refund_request":
            try:
                refund = services.refund_deposit(
                    deposit=Deposit.objects.get(pk=deposit.pk),
                    amount=event[1],
                    actor=actor,
                    reason="property test",
                )
            except Exception as refusal:  # a refusal must be one the model also expects
                assert getattr(refusal, "code", "") in (
                    "invalid_transition",
                    "refund_too_large",
                    "insufficient_funds",
                ), refusal
            else:
                refund_refs[len(refund_refs)] = refund.reference
            model.step(event)
            continue
        deliver(scripted, deposit, event, refund_refs)
        if how == "twice":
            deliver(scripted, deposit, event, refund_refs)
        elif how == "tampered_unsigned":
            deliver(scripted, deposit, event, refund_refs, salt="changed-unsigned-field")
        model.step(event)

    deposit.refresh_from_db()
    assert deposit.status == model.status
    assert balance_delta(deposit, kind=Account.Kind.PLAYER_CASH, player=player) == model.cash
    assert balance_delta(deposit, kind=Account.Kind.PROVIDER_CLEARING) == model.clearing
    assert balance_delta(deposit, kind=Account.Kind.WRITE_OFF) == model.write_off
    assert deposit.refunded_amount == model.refunded
    assert deposit.charged_back_amount == model.charged_back()
    charged = sum(
        Chargeback.objects.filter(deposit=deposit, status=Chargeback.Status.RECEIVED).values_list(
            "amount", flat=True
        ),
        Decimal(0),
    )
    assert charged + deposit.refunded_amount <= (deposit.amount_received or Decimal(0))
    assert Refund.objects.filter(deposit=deposit).count() == len(model.refunds)
    assert ledger_problems() == []


def test_chargebacks_and_reversals_out_of_order_book_each_dispute_once(scripted):
    """A fixed history with each out-of-order case, spelled out."""
    actor = StaffFactory()
    player = make_player()
    deposit = services.create_deposit(
        player=player, method_code="scripted", amount=AMOUNT, currency="EUR", idempotency_key="k"
    )
    for event in [
        ("chargeback", "dp_1", None),
        ("reversal", "dp_2"),
        ("success",),
        ("chargeback", "dp_2", Decimal("5.00")),
        ("reversal", "dp_1"),
    ]:
        deliver(scripted, deposit, event, {})
    services.refund_deposit(deposit=deposit, amount=Decimal("8.00"), actor=actor, reason="r")
    deliver(scripted, deposit, ("chargeback", "dp_3", None), {})
    deposit.refresh_from_db()
    # dp_1 applied then reversed; dp_2's reversal came first, so its chargeback moved nothing;
    # dp_3 could take only what the refund in flight left.
    assert deposit.charged_back_amount == Decimal("12.00")
    assert ledger_problems() == []


def test_a_chargeback_capped_by_a_refund_in_flight_takes_the_rest_when_the_refund_fails(
    scripted,
):
    """Found by the property test: the top-up read the failed refund as still in flight."""
    player = make_player()
    deposit = services.create_deposit(
        player=player, method_code="scripted", amount=AMOUNT, currency="EUR", idempotency_key="k"
    )
    deliver(scripted, deposit, ("success",), {})
    refund = services.refund_deposit(
        deposit=deposit, amount=Decimal("4.00"), actor=StaffFactory(), reason="asked"
    )
    deliver(scripted, deposit, ("chargeback", "dp_1", None), {})
    deposit.refresh_from_db()
    assert deposit.charged_back_amount == Decimal("16.00")  # 4.00 still on its way back

    deliver(scripted, deposit, ("refund_fail", 0), {0: refund.reference})
    deposit.refresh_from_db()
    assert deposit.charged_back_amount == Decimal("20.00")
    assert balance_delta(deposit, kind=Account.Kind.PLAYER_CASH, player=player) == Decimal(0)
    assert ledger_problems() == []
