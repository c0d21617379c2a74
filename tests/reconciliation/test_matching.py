from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from payments.models import Chargeback, Deposit
from reconciliation import services
from reconciliation.models import (
    Break,
    BreakType,
    LineMatch,
    ProviderPolicy,
    ReconciliationRun,
    SettlementImport,
    SettlementLine,
)
from tests.reconciliation import factories as f
from tests.reconciliation.helpers import adyen_time, load, match, stripe_time
from tests.reconciliation.reports import (
    ADYEN_COLUMNS,
    SANDBOX_COLUMNS,
    STRIPE_COLUMNS,
    adyen_row,
    sandbox_row,
    stripe_row,
    write_csv,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stub_providers")]
PROVIDER = "adyen"
RT = SettlementLine.RecordType


def at(hours: float) -> str:
    return (timezone.now() + timedelta(hours=hours)).isoformat()


def row(
    record_type,
    reference,
    gross,
    *,
    hours=-1.0,
    fee="0.00",
    currency="EUR",
    batch="B1",
    payment_reference="",
):
    gross_d, fee_d = Decimal(gross), Decimal(fee)
    return sandbox_row(
        record_type,
        provider=PROVIDER,
        reference=reference,
        gross=gross,
        fee=fee,
        net=str(gross_d - fee_d),
        currency=currency,
        booked_at=at(hours),
        batch=batch,
        payment_reference=payment_reference,
    )


def import_rows(rows, name="day.csv"):
    report, _ = services.receive_report(
        layout=SettlementImport.Layout.SANDBOX,
        provider_code=PROVIDER,
        file_name=name,
        content=write_csv(SANDBOX_COLUMNS, rows),
    )
    return services.load_report(settlement_import=report)


def run_matching(as_of=None):
    run = services.start_run(kind=ReconciliationRun.Kind.MATCH, provider_code=PROVIDER)
    return services.match_settlements(run=run, as_of=as_of)


def outcome(reference, record_type=None):
    lines = SettlementLine.objects.filter(provider_reference=reference)
    if record_type:
        lines = lines.filter(record_type=record_type)
    return [
        (m.status, m.break_type)
        for m in LineMatch.objects.filter(line__in=lines).order_by("line_id")
    ]


@pytest.fixture
def provider():
    ProviderPolicy.objects.create(
        provider_code=PROVIDER,
        amount_tolerance=Decimal("0.00"),
        match_window_hours=72,
        grace_period_hours=24,
    )
    return f.ProviderFactory(code=PROVIDER)


def test_a_crafted_report_produces_every_outcome(provider):
    ok = f.deposit(provider, "10.00")
    by_amount = f.deposit(provider, "77.77")
    short = f.deposit(provider, "100.00")
    other_currency = f.deposit(provider, "50.00")
    failed = f.deposit(provider, "20.00", succeed=False)
    doubled = f.deposit(provider, "40.00")
    late = f.deposit(provider, "60.00")
    unreported = f.deposit(provider, "15.00")
    paid_out = f.withdrawal(provider, "5.00", player=ok.player)
    refunded = f.refund(ok, "3.00", actor=f.StaffUserFactory())

    report = import_rows(
        [
            row("payment", ok.provider_reference, "10.00", fee="0.30"),
            row("payment", "psp-not-ours", "77.77"),  # no reference match: pass 2 on amount
            row("payment", short.provider_reference, "90.00"),
            row("payment", other_currency.provider_reference, "50.00", currency="USD"),
            row("payment", failed.provider_reference, "20.00"),
            row("payment", doubled.provider_reference, "40.00", hours=-2),
            row("payment", doubled.provider_reference, "40.00", hours=-1),
            # Booked 30 h after we completed it: past the 24 h grace, and it makes the report
            # cover far enough for `unreported` to be due.
            row("payment", late.provider_reference, "60.00", hours=30),
            row("payment", "psp-unknown-old", "33.33", hours=-30),
            row("payment", "psp-unknown-recent", "5.55", hours=-1),
            row("player_payout", paid_out.provider_reference, "-5.00"),
            row("refund", refunded.provider_reference, "-3.00"),
            row("fee", "FEE-1", "0.00", fee="1.00"),
        ]
    )
    assert report.lines_loaded == 13

    run = run_matching()

    assert outcome(ok.provider_reference, "payment") == [("matched", "")]
    assert outcome("psp-not-ours") == [("matched", "")]
    assert (
        LineMatch.objects.get(line__provider_reference="psp-not-ours").internal_id == by_amount.pk
    )
    assert outcome(short.provider_reference) == [("break", BreakType.AMOUNT_MISMATCH)]
    assert outcome(other_currency.provider_reference) == [("break", BreakType.CURRENCY_MISMATCH)]
    assert outcome(failed.provider_reference) == [("break", BreakType.STATUS_MISMATCH)]
    assert outcome(doubled.provider_reference) == [("matched", ""), ("break", BreakType.DUPLICATE)]
    assert outcome(late.provider_reference) == [("break", BreakType.TIMING_DIFFERENCE)]
    assert outcome("psp-unknown-old") == [("break", BreakType.MISSING_IN_LEDGER)]
    assert outcome("psp-unknown-recent") == [("pending", "")]
    assert outcome(paid_out.provider_reference) == [("matched", "")]
    assert outcome(refunded.provider_reference) == [("matched", "")]
    assert outcome("FEE-1") == [("matched", "")]

    breaks = {
        (b.break_type, b.internal_reference): (b.our_amount, b.provider_amount, b.difference)
        for b in Break.objects.all()
    }
    assert breaks == {
        (BreakType.AMOUNT_MISMATCH, short.reference): (
            Decimal("100"),
            Decimal("90"),
            Decimal("-10"),
        ),
        (BreakType.CURRENCY_MISMATCH, other_currency.reference): (
            Decimal("50"),
            Decimal("50"),
            Decimal("50"),
        ),
        (BreakType.STATUS_MISMATCH, failed.reference): (
            Decimal("20"),
            Decimal("20"),
            Decimal("20"),
        ),
        (BreakType.DUPLICATE, doubled.reference): (Decimal("40"), Decimal("40"), Decimal("40")),
        (BreakType.TIMING_DIFFERENCE, late.reference): (Decimal("60"), Decimal("60"), Decimal("0")),
        (BreakType.MISSING_IN_LEDGER, ""): (Decimal("0"), Decimal("33.33"), Decimal("33.33")),
        (BreakType.MISSING_AT_PROVIDER, unreported.reference): (
            Decimal("15"),
            Decimal("0"),
            Decimal("-15"),
        ),
    }
    assert run.summary["matched"] == 6
    assert run.summary["pending"] == 1
    assert run.summary["breaks"] == {
        BreakType.AMOUNT_MISMATCH: 1,
        BreakType.CURRENCY_MISMATCH: 1,
        BreakType.STATUS_MISMATCH: 1,
        BreakType.DUPLICATE: 1,
        BreakType.TIMING_DIFFERENCE: 1,
        BreakType.MISSING_IN_LEDGER: 1,
        BreakType.MISSING_AT_PROVIDER: 1,
    }


def test_breaks_that_persist_keep_their_id_and_breaks_that_clear_are_closed(provider):
    short = f.deposit(provider, "100.00")
    import_rows(
        [
            row("payment", short.provider_reference, "90.00"),
            row("payment", "psp-unknown", "33.33"),
        ]
    )
    # Looked at a day and a half later, the unknown payment is past its grace period.
    run_matching(as_of=timezone.now() + timedelta(hours=36))
    first = {b.break_type: b.pk for b in Break.objects.all()}

    # The provider's next report carries the payment we were missing.
    late = f.deposit(provider, "33.33")
    Deposit.objects.filter(pk=late.pk).update(provider_reference="psp-unknown")
    second_run = run_matching()

    amount_break = Break.objects.get(break_type=BreakType.AMOUNT_MISMATCH)
    assert amount_break.pk == first[BreakType.AMOUNT_MISMATCH]
    assert amount_break.last_run_id == second_run.pk
    assert amount_break.first_run_id != second_run.pk
    cleared = Break.objects.get(pk=first[BreakType.MISSING_IN_LEDGER])
    assert (cleared.status, cleared.resolution) == (Break.Status.RESOLVED, "cleared")
    assert list(cleared.transitions.values_list("from_status", "to_status", "actor")) == [
        ("open", "resolved", None)
    ]
    assert outcome("psp-unknown") == [("matched", "")]


def test_reimporting_the_same_report_changes_nothing(provider):
    ok = f.deposit(provider, "10.00")
    rows = [row("payment", ok.provider_reference, "10.00")]
    content = write_csv(SANDBOX_COLUMNS, rows)
    import_rows(rows)
    run_matching()
    _, created = services.receive_report(
        layout=SettlementImport.Layout.SANDBOX,
        provider_code=PROVIDER,
        file_name="copy.csv",
        content=content,
    )
    assert not created
    run_matching()
    assert SettlementLine.objects.count() == 1
    assert outcome(ok.provider_reference) == [("matched", "")]
    assert Break.objects.count() == 0


def test_a_payout_line_is_checked_against_the_batch_it_pays_out(provider):
    one = f.deposit(provider, "100.00")
    two = f.deposit(provider, "50.00")
    import_rows(
        [
            row("payment", one.provider_reference, "100.00", fee="2.00", batch="B7"),
            row("payment", two.provider_reference, "50.00", fee="1.00", batch="B7"),
            row("merchant_payout", "PO-7", "-147.00", batch="B7"),
            row("payment", "psp-x", "1.00", batch="B8", hours=-30),
            row("merchant_payout", "PO-8", "-2.00", batch="B8"),
        ]
    )
    run_matching()
    assert outcome("PO-7") == [("matched", "")]
    assert outcome("PO-8") == [("break", BreakType.AMOUNT_MISMATCH)]
    payout_break = Break.objects.get(line__provider_reference="PO-8")
    assert (payout_break.our_amount, payout_break.provider_amount, payout_break.difference) == (
        Decimal("1.00"),
        Decimal("2.00"),
        Decimal("1.00"),
    )


def test_a_chargeback_we_have_not_seen_is_booked_through_payments(provider):
    disputed = f.deposit(provider, "80.00")
    import_rows(
        [
            row("chargeback", "CB-77", "-80.00", payment_reference=disputed.provider_reference),
            row("chargeback", "CB-78", "-10.00", payment_reference="psp-nobody", hours=-30),
        ]
    )
    run = run_matching()
    chargeback = Chargeback.objects.get(provider_reference="CB-77")
    assert (chargeback.deposit_id, chargeback.amount) == (disputed.pk, Decimal("80.00"))
    assert outcome("CB-77") == [("matched", "")]
    assert outcome("CB-78") == [("break", BreakType.MISSING_IN_LEDGER)]
    assert run.summary["chargebacks_booked"] == 1
    # A second run neither books it again nor breaks on it.
    run_matching()
    assert Chargeback.objects.filter(provider_reference="CB-77").count() == 1
    assert outcome("CB-77") == [("matched", "")]


def test_amount_tolerance_and_window_are_per_provider(provider):
    ProviderPolicy.objects.filter(provider_code=PROVIDER).update(
        amount_tolerance=Decimal("0.05"), match_window_hours=2
    )
    near = f.deposit(provider, "20.00")
    f.deposit(provider, "30.00")
    import_rows(
        [
            row("payment", near.provider_reference, "20.04"),
            row("payment", "psp-far", "30.00", hours=-5),  # outside the 2 h window
        ]
    )
    run_matching()
    assert outcome(near.provider_reference) == [("matched", "")]
    assert outcome("psp-far") == [("pending", "")]


def test_a_reference_two_of_our_deposits_share_pairs_the_line_with_one_of_them(provider):
    first, second = f.deposit(provider, "25.00"), f.deposit(provider, "25.00")
    # Payments does not make provider references unique; a provider that reuses one must
    # not make matching count its line twice.
    Deposit.objects.filter(pk=second.pk).update(provider_reference=first.provider_reference)
    import_rows([row("payment", first.provider_reference, "25.00")])
    run = run_matching()
    (match,) = LineMatch.objects.all()
    assert (match.status, match.internal_kind, match.internal_id) == (
        "matched",
        "deposit",
        first.pk,
    )
    assert run.summary["lines"] == 1
    # The other one is ours alone, not reported yet (within the grace period).
    assert run.summary["pending_transactions"] == 1
    assert not Break.objects.exists()


# --- issue 15: chargebacks first seen in a report are booked at the line's booking time -----


def _chargeback_report(layout, deposits, disputed_at):
    """A real-layout report settling each deposit on its completion day and, days later,
    charging every one of them back."""
    rows = []
    if layout == SettlementImport.Layout.ADYEN:
        for n, dep in enumerate(deposits):
            rows.append(
                adyen_row(
                    "Settled",
                    psp=dep.provider_reference,
                    merchant_reference=dep.reference,
                    gross_credit="40.00",
                    net_credit="40.00",
                    created=adyen_time(dep.completed_at),
                )
            )
            rows.append(
                adyen_row(
                    "Chargeback",
                    psp=dep.provider_reference,
                    modification=f"CB-{n}",
                    merchant_reference=dep.reference,
                    gross_debit="40.00",
                    net_debit="40.00",
                    created=adyen_time(disputed_at + timedelta(minutes=n)),
                )
            )
        return write_csv(ADYEN_COLUMNS, rows)
    for n, dep in enumerate(deposits):
        rows.append(
            stripe_row(
                "charge",
                txn=f"txn_c{n}",
                source=f"ch_{n}",
                payment_intent=dep.provider_reference,
                gross="40.00",
                created=stripe_time(dep.completed_at),
            )
        )
        rows.append(
            stripe_row(
                "dispute",
                txn=f"txn_d{n}",
                source=f"dp_{n}",
                payment_intent=dep.provider_reference,
                gross="-40.00",
                fee="15.00",
                net="-55.00",
                created=stripe_time(disputed_at + timedelta(minutes=n)),
            )
        )
    return write_csv(STRIPE_COLUMNS, rows)


@pytest.mark.parametrize("layout", [SettlementImport.Layout.ADYEN, SettlementImport.Layout.STRIPE])
def test_chargebacks_first_seen_in_an_old_report_match_at_their_booking_time(provider, layout):
    now = timezone.now()
    deposits = [f.deposit(provider, "40.00") for _ in range(3)]
    # Completed a week ago; the provider booked the chargebacks three days ago, and we only
    # hear of them now, from the report: far past the 24 h grace from the time we learn it.
    Deposit.objects.filter(pk__in=[d.pk for d in deposits]).update(
        completed_at=now - timedelta(days=7)
    )
    deposits = list(Deposit.objects.filter(pk__in=[d.pk for d in deposits]).order_by("pk"))
    disputed_at = (now - timedelta(days=3)).replace(microsecond=0)
    load(layout, PROVIDER, _chargeback_report(layout, deposits, disputed_at))

    run = match(PROVIDER, as_of=now)

    assert run.summary["chargebacks_booked"] == 3
    chargebacks = Chargeback.objects.filter(deposit__in=deposits).order_by("deposit_id")
    assert [(c.amount, c.occurred_at) for c in chargebacks] == [
        (Decimal("40.00"), disputed_at + timedelta(minutes=n)) for n in range(3)
    ]
    outcomes = LineMatch.objects.filter(line__record_type=RT.CHARGEBACK)
    assert sorted(outcomes.values_list("status", "break_type")) == [("matched", "")] * 3
    assert not Break.objects.exists()
    # Nothing changes on the next run.
    match(PROVIDER, as_of=now + timedelta(hours=1))
    assert not Break.objects.exists()
    assert Chargeback.objects.count() == 3
