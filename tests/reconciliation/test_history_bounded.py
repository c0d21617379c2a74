"""History-bounded matching (issue 15, item 4): each run touches only open items.

Ten consecutive daily Adyen settlement-details reports, as the provider writes them, each
matched the day it arrives while finance works the day's line breaks. Every run records its
working set on the run (`summary["working_set"]`: the lines and our transactions it read);
day 10's must be the size of day 1's, not ten times it, and the breaks must come out exactly
as a person would expect them (none lost, none doubled), late lines included.
"""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count, Sum

from payments.models import Deposit
from reconciliation import services
from reconciliation.models import (
    Break,
    BreakType,
    DailyLineTotal,
    DirtyLineDay,
    LineMatch,
    MatchingWatermark,
    ProviderPolicy,
    ReconciliationRun,
    SettlementImport,
    SettlementLine,
)
from tests.reconciliation import factories as f
from tests.reconciliation.helpers import adyen_time, load, match
from tests.reconciliation.reports import ADYEN_COLUMNS, adyen_row, write_csv

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stub_providers")]

PROVIDER = "adyen"
DAYS = 10
PER_DAY = 12  # deposits a day: 10 reported right, 1 short, 1 never reported
RT = SettlementLine.RecordType


def _day_start(day: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=DAYS + 2 - day)


def _settled(deposit, amount: str, *, booked: datetime, batch: str) -> dict:
    return adyen_row(
        "Settled",
        psp=deposit.provider_reference,
        merchant_reference=deposit.reference,
        gross_credit=amount,
        net_credit=amount,
        created=adyen_time(booked),
        batch=batch,
    )


@pytest.fixture
def provider():
    # A short window and grace period: our side's open span is about a day.
    ProviderPolicy.objects.create(
        provider_code=PROVIDER,
        amount_tolerance=Decimal("0.00"),
        match_window_hours=6,
        grace_period_hours=12,
    )
    return f.ProviderFactory(code=PROVIDER)


def _deposits_of_day(provider, day: int) -> list[Deposit]:
    """PER_DAY deposits completed on `day`, half an hour apart from 01:00."""
    made = [f.deposit(provider, "20.00") for _ in range(PER_DAY)]
    for n, dep in enumerate(made):
        Deposit.objects.filter(pk=dep.pk).update(
            completed_at=_day_start(day) + timedelta(hours=1, minutes=30 * n)
        )
    return list(Deposit.objects.filter(pk__in=[d.pk for d in made]).order_by("pk"))


def test_ten_daily_reports_each_touch_only_open_items(provider):
    finance = f.StaffUserFactory()
    days: dict[int, list[Deposit]] = {}
    working: dict[int, dict] = {}
    for day in range(1, DAYS + 1):
        deposits = days[day] = _deposits_of_day(provider, day)
        batch = f"{day:03d}"
        rows = [
            _settled(dep, "20.00", booked=dep.completed_at + timedelta(hours=1), batch=batch)
            for dep in deposits[:10]
        ]
        # Short by 1.00: an amount mismatch. deposits[11] is never reported.
        rows.append(
            _settled(
                deposits[10],
                "19.00",
                booked=deposits[10].completed_at + timedelta(hours=1),
                batch=batch,
            )
        )
        # A payment we never heard of: missing in our ledger.
        rows.append(
            adyen_row(
                "Settled",
                psp=f"PSP-UNKNOWN-{day}",
                gross_credit="7.00",
                net_credit="7.00",
                created=adyen_time(_day_start(day) + timedelta(hours=8)),
                batch=batch,
            )
        )
        late = 0
        if day == 8:
            # Late lines, for transactions older than the watermark: day 1's first deposit
            # again (matched a week ago: a duplicate), and day 2's never-reported one (its
            # missing-at-provider break is open: the line clears it).
            rows.append(
                _settled(
                    days[1][0], "20.00", booked=_day_start(day) + timedelta(hours=2), batch=batch
                )
            )
            rows.append(
                _settled(
                    days[2][11],
                    "20.00",
                    booked=days[2][11].completed_at + timedelta(hours=1),
                    batch=batch,
                )
            )
            late = 2
        report = load(
            SettlementImport.Layout.ADYEN, PROVIDER, write_csv(ADYEN_COLUMNS, rows), f"{day}.csv"
        )
        assert report.lines_loaded == 12 + late

        run = match(PROVIDER, as_of=_day_start(day) + timedelta(days=1, hours=6))
        working[day] = run.summary["working_set"]

        # Every line the run read was this day's report (the day's line breaks were worked
        # the day before), and the watermark moved past them.
        assert working[day]["new_lines"] == 12 + late
        assert working[day]["open_lines"] == 0
        assert MatchingWatermark.objects.get(provider_code=PROVIDER).lines_through == (
            SettlementLine.objects.filter(provider_code=PROVIDER).order_by("-id").first().pk
        )
        # Finance works the day's line breaks: accepted as the provider reported them.
        for brk in Break.objects.filter(status=Break.Status.OPEN, line__isnull=False):
            services.resolve_break(
                brk=brk, actor=finance, resolution="accepted", reason="provider's figure"
            )

    # Our side: the day's deposits and the day before's (the open span, 6 h window + 12 h
    # grace before the end of the last report), plus the still-unreported deposits of earlier
    # days whose missing-at-provider breaks are open; and on day 8, the one deposit a late
    # line named by reference that no other rule brought in.
    assert working[1]["transactions"] == PER_DAY
    assert working[8]["transactions_by_reference"] == 1
    assert working[DAYS]["transactions_since_open_from"] <= 2 * PER_DAY
    # Days 1 and 3-8: day 2's was reported late, day 9's is inside the open span.
    assert working[DAYS]["transactions_open_items"] == DAYS - 3
    # Day 10 read about what day 1 read, not ten times it: the history is 120 deposits and
    # 122 lines.
    assert working[DAYS]["new_lines"] == working[1]["new_lines"]
    assert working[DAYS]["transactions"] <= 3 * working[1]["transactions"]
    assert Deposit.objects.count() == DAYS * PER_DAY
    assert working[DAYS]["transactions"] < DAYS * PER_DAY / 3

    # No break lost or doubled: one break per identity, and exactly the planted ones.
    assert not Break.objects.values("key").annotate(n=Count("id")).filter(n__gt=1).exists()
    by_type = dict(
        Break.objects.values_list("break_type")
        .annotate(n=Count("id"))
        .values_list("break_type", "n")
    )
    # Each day's short payment and unknown payment, and day 8's duplicate, all resolved.
    assert by_type[BreakType.AMOUNT_MISMATCH] == DAYS
    assert by_type[BreakType.MISSING_IN_LEDGER] == DAYS
    assert by_type[BreakType.DUPLICATE] == 1
    assert not Break.objects.filter(line__isnull=False).exclude(status="resolved").exists()
    dup = Break.objects.get(break_type=BreakType.DUPLICATE)
    assert dup.internal_id == days[1][0].pk
    # The never-reported deposits of days 1-9 are missing at provider (day 10's is still in
    # its grace period); day 2's was reported late on day 8, so its break was cleared.
    missing = Break.objects.filter(break_type=BreakType.MISSING_AT_PROVIDER)
    assert sorted(missing.values_list("internal_id", flat=True)) == sorted(
        days[day][11].pk for day in range(1, DAYS)
    )
    cleared = missing.get(internal_id=days[2][11].pk)
    assert (cleared.status, cleared.resolution) == (Break.Status.RESOLVED, "cleared")
    assert missing.filter(status=Break.Status.OPEN).count() == DAYS - 2
    late_line = LineMatch.objects.get(
        internal_kind="deposit", internal_id=days[2][11].pk, status="matched"
    )
    assert late_line.line.settlement_import.file_name == "8.csv"
    # Every line has exactly one outcome.
    assert LineMatch.objects.count() == SettlementLine.objects.count() == DAYS * 12 + 2


def test_a_late_line_for_a_transaction_matched_long_ago_is_found_by_reference(provider):
    old = _deposits_of_day(provider, 1)[:1][0]
    load(
        SettlementImport.Layout.ADYEN,
        PROVIDER,
        write_csv(
            ADYEN_COLUMNS,
            [_settled(old, "20.00", booked=old.completed_at + timedelta(hours=1), batch="1")],
        ),
        "1.csv",
    )
    match(PROVIDER, as_of=_day_start(2))
    between = _deposits_of_day(provider, 5)[0]
    load(
        SettlementImport.Layout.ADYEN,
        PROVIDER,
        write_csv(
            ADYEN_COLUMNS,
            [_settled(between, "20.00", booked=between.completed_at, batch="5")],
        ),
        "5.csv",
    )
    match(PROVIDER, as_of=_day_start(6))
    assert MatchingWatermark.objects.get().open_from > old.completed_at
    recent = _deposits_of_day(provider, 9)[0]
    # Nine days later, a report with a recent payment and the old one again.
    load(
        SettlementImport.Layout.ADYEN,
        PROVIDER,
        write_csv(
            ADYEN_COLUMNS,
            [
                _settled(recent, "20.00", booked=recent.completed_at, batch="9"),
                _settled(old, "20.00", booked=_day_start(9), batch="9"),
            ],
        ),
        "9.csv",
    )
    run = match(PROVIDER, as_of=_day_start(10))
    assert run.summary["working_set"]["new_lines"] == 2
    # The old deposit is far before the watermark: only its reference brought it in.
    assert run.summary["working_set"]["transactions_by_reference"] == 1
    duplicate = Break.objects.get(break_type=BreakType.DUPLICATE)
    assert (duplicate.internal_id, duplicate.difference) == (old.pk, Decimal("20"))


def test_the_integrity_job_re_sums_only_the_days_loads_changed(provider):
    deposits = _deposits_of_day(provider, 1)
    rows = [
        _settled(dep, "20.00", booked=dep.completed_at + timedelta(hours=n * 2), batch="1")
        for n, dep in enumerate(deposits[:3])
    ]
    # Three lines on day 1 and one on day 2.
    rows.append(
        _settled(deposits[3], "20.00", booked=_day_start(2) + timedelta(hours=1), batch="1")
    )
    load(SettlementImport.Layout.ADYEN, PROVIDER, write_csv(ADYEN_COLUMNS, rows), "a.csv")
    assert DirtyLineDay.objects.count() == 2

    first = services.run_integrity_check()
    assert first.days_resummed == 2
    assert not DirtyLineDay.objects.exists()
    assert services.run_integrity_check().days_resummed == 0

    # A later report adds a line to day 2 only: only day 2 is summed again.
    load(
        SettlementImport.Layout.ADYEN,
        PROVIDER,
        write_csv(
            ADYEN_COLUMNS,
            [_settled(deposits[4], "20.00", booked=_day_start(2) + timedelta(hours=3), batch="2")],
        ),
        "b.csv",
    )
    assert services.run_integrity_check().days_resummed == 1
    # The totals equal what every line adds up to.
    totals = {(t.day, t.currency): (t.lines, t.net) for t in DailyLineTotal.objects.order_by("day")}
    assert totals == {
        (_day_start(1).date(), "EUR"): (3, Decimal("60")),
        (_day_start(2).date(), "EUR"): (2, Decimal("40")),
    }
    assert (
        DailyLineTotal.objects.aggregate(s=Sum("net"))["s"]
        == SettlementLine.objects.aggregate(s=Sum("net"))["s"]
    )


@pytest.mark.django_db(transaction=True)
def test_a_matching_run_waits_for_a_load_of_its_provider():
    provider = f.ProviderFactory(code=PROVIDER)
    deposit = f.deposit(provider, "10.00")
    load(
        SettlementImport.Layout.ADYEN,
        PROVIDER,
        write_csv(
            ADYEN_COLUMNS,
            [_settled(deposit, "10.00", booked=deposit.completed_at, batch="1")],
        ),
    )
    holding, release = threading.Event(), threading.Event()
    outcome = {}

    def loader():
        # What a load holds while it writes lines: the provider's load lock.
        from django.db import transaction

        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [0x5E7A, PROVIDER])
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    def matcher():
        try:
            outcome["run"] = match(PROVIDER)
        finally:
            connection.close()

    threads = [threading.Thread(target=loader), threading.Thread(target=matcher)]
    threads[0].start()
    assert holding.wait(10)
    threads[1].start()
    # The run waits on the load's lock (seen in pg_locks), and has written nothing.
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    waiting = False
    while datetime.now(UTC) < deadline and not waiting:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND classid = %s",
                [0x5E7A],
            )
            waiting = cursor.fetchone()[0] == 1
    assert waiting
    assert not LineMatch.objects.exists()
    release.set()
    for thread in threads:
        thread.join(30)
    assert outcome["run"].status == ReconciliationRun.Status.DONE
    assert LineMatch.objects.get().status == "matched"
