from decimal import Decimal

import pytest

from reconciliation import services
from reconciliation.models import (
    IntegrityAlert,
    LineMatch,
    ReconciliationRun,
    SettlementPosting,
)
from tests.reconciliation import factories as f
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
