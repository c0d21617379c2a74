from decimal import Decimal

import pytest
from django.utils import timezone

from reconciliation import services
from reconciliation.models import (
    Break,
    IntegrityAlert,
    LineMatch,
    ReconciliationRun,
    SettlementImport,
    SettlementLine,
    SettlementPosting,
)
from tests.reconciliation import factories as f
from tests.reconciliation.helpers import load, match, stripe_time
from tests.reconciliation.helpers import settle as settle_for
from tests.reconciliation.reports import STRIPE_COLUMNS, stripe_row, write_csv
from tests.reconciliation.test_matching import PROVIDER, import_rows, row, run_matching
from wallets import selectors
from wallets.models import Account, JournalEntry

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stub_providers")]


def balance(kind, code=PROVIDER, currency="EUR") -> Decimal:
    account = Account.objects.get(kind=kind, system_code=code, currency_id=currency, owner=None)
    return selectors.account_balance(account)


def settle():
    run = services.start_run(kind=ReconciliationRun.Kind.SETTLE, provider_code=PROVIDER)
    return services.settle(run=run)


@pytest.fixture
def provider():
    return f.ProviderFactory(code=PROVIDER)


@pytest.fixture
def settled_day(provider):
    first = f.deposit(provider, "100.00")
    second = f.deposit(provider, "50.00")
    paid_out = f.withdrawal(provider, "20.00", player=first.player)
    refunded = f.refund(second, "10.00", actor=f.StaffUserFactory())
    in_transit = f.deposit(provider, "30.00")  # not in the provider's report yet
    import_rows(
        [
            row("payment", first.provider_reference, "100.00", fee="2.00"),
            row("payment", second.provider_reference, "50.00", fee="1.00"),
            row("refund", refunded.provider_reference, "-10.00"),
            row("player_payout", paid_out.provider_reference, "-20.00"),
            row("fee", "FEE-1", "0.00", fee="0.50"),
            row("merchant_payout", "PO-1", "-116.50"),
        ]
    )
    run = run_matching()
    assert run.summary["matched"] == 6
    assert run.summary["pending_transactions"] == 1
    return in_transit


def test_fees_and_payout_leave_the_clearing_account_holding_what_is_in_transit(settled_day):
    run = settle()

    assert run.summary == {"fee_entries": 1, "payout_entries": 1}
    assert balance(Account.Kind.FEES) == Decimal("-3.50")
    assert balance(Account.Kind.OPERATOR_BANK) == Decimal("-116.50")
    # Only the deposit the provider has not reported yet is still with the provider.
    assert balance(Account.Kind.PROVIDER_CLEARING) == -settled_day.amount
    assert selectors.ledger_problems() == []
    assert SettlementPosting.objects.count() == 4
    fee_entry = JournalEntry.objects.get(kind=JournalEntry.Kind.PROVIDER_FEE)
    assert fee_entry.external_reference == "B1"


def test_settling_twice_books_nothing_more(settled_day):
    settle()
    entries = JournalEntry.objects.count()
    again = settle()
    assert again.summary == {"fee_entries": 0, "payout_entries": 0}
    assert JournalEntry.objects.count() == entries
    assert balance(Account.Kind.PROVIDER_CLEARING) == Decimal("-30.00")


def test_integrity_job_is_clean_after_settlement(settled_day):
    settle()
    run = services.run_integrity_check()
    assert run.is_clean
    assert run.ledger_problems == []
    eur = next(r for r in run.clearing_comparison if r["currency"] == "EUR")
    assert eur == {
        "provider": PROVIDER,
        "currency": "EUR",
        "ledger_in_transit": "30.00",
        "provider_in_transit": "30.00",
        "difference": "0.00",
        "ledger_paid_out": "116.50",
        "provider_paid_out": "116.50",
        "paid_out_difference": "0.00",
        "open_breaks": 0,
    }
    assert IntegrityAlert.objects.count() == 0


def test_integrity_job_raises_an_alert_for_an_unexplained_clearing_difference(provider):
    short = f.deposit(provider, "100.00")
    import_rows(
        [
            row("payment", short.provider_reference, "90.00"),
            row("merchant_payout", "PO-1", "-90.00"),
        ]
    )
    run_matching()
    settle()
    run = services.run_integrity_check()
    assert not run.is_clean
    (alert,) = IntegrityAlert.objects.filter(run=run)
    assert alert.message == (
        f"Clearing {PROVIDER} EUR: the ledger has 10.00 in transit, the provider's reports "
        "0.00 (difference 10.00; 1 open break(s))."
    )


def test_a_break_line_fee_is_booked_only_once_the_break_is_resolved(provider):
    short = f.deposit(provider, "100.00")
    import_rows([row("payment", short.provider_reference, "90.00", fee="1.00")])
    run_matching()
    settle()
    assert not SettlementPosting.objects.exists()
    short_break = LineMatch.objects.get().line.breaks.get()
    services.resolve_break(
        brk=short_break, actor=f.StaffUserFactory(), resolution="accepted", reason="agreed"
    )
    assert LineMatch.objects.get().status == LineMatch.Status.RESOLVED
    settle()
    assert balance(Account.Kind.FEES) == Decimal("-1.00")


# --- issue 15: Stripe payouts, listed only through the lines they settle, are booked --------

STRIPE = "stripe"


def _stripe_payout_report(charges, refund, *, effective="2026-11-22 00:00:00"):
    """An itemized payout reconciliation report: two automatic payouts, no payout rows."""
    one, two, three = charges
    rows = [
        stripe_row(
            "charge",
            txn="txn_1",
            source="ch_1",
            payment_intent=one.provider_reference,
            gross="100.00",
            fee="3.20",
            net="96.80",
            payout="po_A",
        ),
        stripe_row(
            "charge",
            txn="txn_2",
            source="ch_2",
            payment_intent=two.provider_reference,
            gross="50.00",
            fee="1.75",
            net="48.25",
            payout="po_A",
        ),
        stripe_row(
            "charge",
            txn="txn_3",
            source="ch_3",
            payment_intent=three.provider_reference,
            gross="20.00",
            fee="0.88",
            net="19.12",
            payout="po_B",
        ),
        stripe_row(
            "refund",
            txn="txn_4",
            source=refund.provider_reference,
            payment_intent=two.provider_reference,
            gross="-10.00",
            payout="po_B",
        ),
    ]
    for row_ in rows:
        row_["automatic_payout_effective_at"] = effective
        row_["created_utc"] = row_["created"] = stripe_time(timezone.now())
    return write_csv(STRIPE_COLUMNS, rows)


def test_stripe_payouts_are_derived_per_payout_id_matched_booked_and_checked():
    provider = f.ProviderFactory(code=STRIPE, protocol="stripe")
    charges = [f.deposit(provider, amount) for amount in ("100.00", "50.00", "20.00")]
    refund = f.refund(charges[1], "10.00", actor=f.StaffUserFactory())
    report = load(SettlementImport.Layout.STRIPE, STRIPE, _stripe_payout_report(charges, refund))

    assert (report.lines_loaded, report.payouts_derived) == (4, 2)
    payouts = SettlementLine.objects.filter(record_type="merchant_payout").order_by("batch")
    assert [
        (p.batch, p.provider_reference, p.net, p.line_number, p.booked_at.isoformat())
        for p in payouts
    ] == [
        ("po_A", "po_A", Decimal("-145.05"), 0, "2026-11-22T00:00:00+00:00"),
        ("po_B", "po_B", Decimal("-9.12"), 0, "2026-11-22T00:00:00+00:00"),
    ]

    run = match(STRIPE)
    assert run.summary["matched"] == 6
    assert not Break.objects.exists()
    # Matched but not booked yet: the provider says it paid 154.17, the ledger has nothing.
    before = services.run_integrity_check()
    eur = next(r for r in before.clearing_comparison if r["currency"] == "EUR")
    assert (eur["provider_paid_out"], eur["ledger_paid_out"]) == ("154.17", "0.00")
    assert not before.is_clean

    assert settle_for(STRIPE).summary == {"fee_entries": 2, "payout_entries": 2}

    assert balance(Account.Kind.OPERATOR_BANK, STRIPE) == Decimal("-154.17")
    assert balance(Account.Kind.FEES, STRIPE) == Decimal("-5.83")
    assert balance(Account.Kind.PROVIDER_CLEARING, STRIPE) == Decimal("0.00")
    after = services.run_integrity_check()
    assert after.is_clean, after.clearing_comparison
    assert selectors.ledger_problems() == []


def test_a_stripe_report_sent_again_derives_no_second_payout():
    provider = f.ProviderFactory(code=STRIPE, protocol="stripe")
    charges = [f.deposit(provider, amount) for amount in ("100.00", "50.00", "20.00")]
    refund = f.refund(charges[1], "10.00", actor=f.StaffUserFactory())
    content = _stripe_payout_report(charges, refund)
    load(SettlementImport.Layout.STRIPE, STRIPE, content, name="monday.csv")
    # The same payouts in a report for an overlapping range (other bytes: one more column).
    overlapping = content.replace(b"payment_metadata[reference]", b"payment_metadata[ref]")
    again = load(SettlementImport.Layout.STRIPE, STRIPE, overlapping, name="overlap.csv")
    assert (again.lines_loaded, again.lines_already_known, again.payouts_derived) == (0, 4, 0)
    assert SettlementLine.objects.filter(record_type="merchant_payout").count() == 2
    match(STRIPE)
    settle_for(STRIPE)
    settle_for(STRIPE)
    assert balance(Account.Kind.OPERATOR_BANK, STRIPE) == Decimal("-154.17")
