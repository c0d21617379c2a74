"""Benchmarks of reconciliation: one big report, and a run of daily reports.

Single report (default): import + matching + classification of a 1,000,000-line settlement
report against 1,000,000 of our transactions, end to end, printed beside the floor measured
in the same run on the same file: COPY into an unlogged table with no index and one FULL JOIN
of it with our transactions that classifies every line (the least any design must do).

Daily reports (`--days N --lines-per-day M`): N consecutive days, each with M of our
transactions and the provider's report of that day (plus late lines for earlier days);
import + match of each day is timed and printed, with the ratio of the last day to the first:
with history-bounded matching a day's cost does not grow with the days before it.

Data is generated set-based (INSERT … SELECT generate_series for our side, COPY … TO for the
report, in the real Adyen settlement details layout) and is not timed. Timed: receiving the
file (checksum, storage), loading it (COPY, checks, normalized insert) and one matching run.
Every SQL statement of the timed part is timed too, to show where the time goes.

Each break type is planted in ~0.5% of the data, keyed on the transaction id (id % 1000):
  0-4 missing in ledger, 5-9 missing at provider, 10-14 amount mismatch, 15-19 currency
  mismatch, 20-24 status mismatch (we failed it, they settled it), 25-29 duplicate,
  30-34 timing difference, 35-39 matched on amount and date only (no reference).
"""

import shutil
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from payments.models import (
    Chargeback,
    Deposit,
    PaymentMethod,
    PaymentProvider,
    PayoutInstrument,
    Refund,
    Withdrawal,
)
from reconciliation import services
from reconciliation.models import (
    Break,
    BreakTransition,
    DailyLineTotal,
    DirtyLineDay,
    LineMatch,
    MatchingWatermark,
    ProviderPolicy,
    ReconciliationRun,
    SettlementImport,
    SettlementLine,
)
from wallets.models import Currency, Player

CODE = "bench-adyen"
ADYEN_HEADER = (
    "Company Account,Merchant Account,Psp Reference,Merchant Reference,Payment Method,"
    "Creation Date,TimeZone,Type,Modification Reference,Gross Currency,Gross Debit (GC),"
    "Gross Credit (GC),Exchange Rate,Net Currency,Net Debit (NC),Net Credit (NC),"
    "Commission (NC),Markup (NC),Scheme Fees (NC),Interchange (NC),Payment Method Variant,"
    "Modification Merchant Reference,Batch Number,Reserved4,Reserved5"
)


def _insert_sql(model, expressions: dict[str, str], source: str) -> str:
    """INSERT … SELECT for `model`: `expressions` for the columns we care about, every other
    non-null column gets its field default, so the benchmark follows payments' schema."""
    columns, values = [], []
    with connection.cursor() as cursor:
        for field in model._meta.concrete_fields:
            if field.primary_key:
                continue
            if field.attname in expressions:
                value = expressions[field.attname]
            elif field.null:
                continue
            else:
                prepared = field.get_db_prep_save(field.get_default(), connection)
                value = cursor.mogrify("%s", [prepared]).decode()
            columns.append(connection.ops.quote_name(field.column))
            values.append(value)
    return (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM {source}"
    )


class Command(BaseCommand):
    help = "Time import + matching + classification of a 1M-line report against 1M transactions."

    def add_arguments(self, parser):
        parser.add_argument("--transactions", type=int, default=1_000_000)
        parser.add_argument(
            "--keep", action="store_true", help="Leave the generated data in the database."
        )
        parser.add_argument("--save-report", help="Also copy the generated report to this path.")
        parser.add_argument(
            "--days", type=int, default=0, help="Daily reports instead of one big report."
        )
        parser.add_argument("--lines-per-day", type=int, default=200_000)
        parser.add_argument(
            "--leave-breaks-open",
            action="store_true",
            help="Daily reports: nobody works the breaks, so open items pile up day after day.",
        )

    def handle(self, *args, **options):
        if connection.vendor != "postgresql":
            raise CommandError("The benchmark needs PostgreSQL (DATABASE_URL).")
        if options["days"]:
            self._reset()
            try:
                self._daily(
                    options["days"],
                    options["lines_per_day"],
                    work_breaks=not options["leave_breaks_open"],
                )
            finally:
                if not options["keep"]:
                    self._reset()
            return
        count = options["transactions"]
        self._reset()
        started = time.perf_counter()
        self._generate_transactions(count)
        with tempfile.TemporaryDirectory() as folder:
            report_path = Path(folder) / "settlement.csv"
            lines = self._write_report(report_path)
            self.stdout.write(
                f"generated {count:,} transactions and a {lines:,}-line report "
                f"({report_path.stat().st_size / 1e6:.0f} MB) in "
                f"{time.perf_counter() - started:.1f} s (not timed)"
            )
            if options["save_report"]:
                shutil.copy(report_path, options["save_report"])
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
                # Generating wrote about a gigabyte of WAL: let its checkpoint happen now,
                # not in the middle of the timed part.
                cursor.execute("CHECKPOINT")
            floors = [self._floor(report_path)]
            total = self._timed_run(report_path)
            floors.append(self._floor(report_path))
            self._print_floor(floors, total)
        if not options["keep"]:
            self._reset()

    # --- generation (untimed) --------------------------------------------------------------

    def _generate_transactions(self, count: int) -> None:
        # Completed over the 30 days up to 10 days ago, so the report (booked up to then)
        # covers them.
        now = timezone.now()
        self._create_provider()
        self._insert_transactions(1, count, now - timedelta(days=40), 2.592)

    def _create_provider(self) -> None:
        Currency.objects.get(code="EUR")
        provider = PaymentProvider.objects.create(
            code=CODE,
            name="Benchmark Adyen",
            kind=PaymentProvider.Kind.CARD,
            api_base_url="http://127.0.0.1:9/",
        )
        PaymentMethod.objects.create(code=CODE, name="Benchmark card", provider=provider)
        ProviderPolicy.objects.update_or_create(
            provider_code=CODE,
            defaults={"amount_tolerance": 0, "match_window_hours": 72, "grace_period_hours": 48},
        )
        now = timezone.now()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                _insert_sql(
                    Player,
                    {
                        "external_id": "'bench-' || g",
                        "status": "'active'",
                        "created_at": "%(now)s",
                    },
                    "generate_series(1, 1000) g",
                ),
                {"now": now},
            )
            cursor.execute("SELECT min(id) FROM wallets_player WHERE external_id LIKE 'bench-%%'")
            first_player = cursor.fetchone()[0]
            cursor.execute(
                _insert_sql(
                    PayoutInstrument,
                    {
                        "player_id": f"{first_player} + g - 1",
                        "kind": "'card_token'",
                        "provider_id": str(provider.pk),
                        "identifier": "'tok_bench_' || g",
                        "created_at": "%(now)s",
                    },
                    "generate_series(1, 1000) g",
                ),
                {"now": now},
            )

    def _insert_transactions(self, first: int, last: int, start, seconds_apart: float) -> None:
        """Our transactions number `first` to `last` (g), the first completed at `start`,
        each `seconds_apart` after the one before. Every tenth is a withdrawal; the rest
        deposits."""
        provider = PaymentProvider.objects.get(code=CODE)
        method = PaymentMethod.objects.get(code=CODE)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT min(id) FROM wallets_player WHERE external_id LIKE 'bench-%%'")
            first_player = cursor.fetchone()[0]
            cursor.execute(
                f"SELECT min(id) FROM {PayoutInstrument._meta.db_table} WHERE provider_id = %s",
                [provider.pk],
            )
            first_instrument = cursor.fetchone()[0]
            completed = (
                f"%(start)s + ((g - {first}) * interval '{seconds_apart * 1000:.0f} milliseconds')"
            )
            amount = "(5 + (g %% 50000) / 100.0)::numeric(28, 8)"
            deposits = f"generate_series({first}, {last}) g WHERE g %% 10 <> 0"
            now = start
            cursor.execute(
                _insert_sql(
                    Deposit,
                    {
                        "reference": "'dep_' || g",
                        "player_id": f"{first_player} + g %% 1000",
                        "provider_id": str(provider.pk),
                        "method_id": str(method.pk),
                        "amount": amount,
                        "amount_received": amount,
                        "currency_id": "'EUR'",
                        # 20-24 (0.5%): we failed it.
                        "status": "CASE WHEN g %% 1000 BETWEEN 20 AND 24 THEN 'failed' "
                        "ELSE 'succeeded' END",
                        "provider_reference": "'PSP' || g",
                        "idempotency_key": "'bench-' || g",
                        "created_at": completed,
                        "updated_at": completed,
                        "expires_at": completed,
                        "completed_at": completed,
                    },
                    deposits,
                ),
                {"now": now, "start": start},
            )
            cursor.execute(
                _insert_sql(
                    Withdrawal,
                    {
                        "reference": "'wd_' || g",
                        "player_id": f"{first_player} + g %% 1000",
                        "provider_id": str(provider.pk),
                        "instrument_id": f"{first_instrument} + g %% 1000",
                        "amount": amount,
                        "currency_id": "'EUR'",
                        "status": "CASE WHEN g %% 1000 BETWEEN 20 AND 24 THEN 'failed' "
                        "ELSE 'paid' END",
                        "provider_reference": "'PSP' || g",
                        "idempotency_key": "'bench-' || g",
                        "created_at": completed,
                        "updated_at": completed,
                        "completed_at": completed,
                    },
                    f"generate_series({(first + 9) // 10 * 10}, {last}, 10) g",
                ),
                {"now": now, "start": start},
            )

    def _write_report(
        self, path: Path, *, day: str = "TRUE", late: str = "FALSE", batch: str = ""
    ) -> int:
        """The provider's view of our transactions `day` selects (SQL on g), with the planted
        breaks, plus the lines `late` selects (reported after the day they belong to).
        `batch`: every line's batch (SQL), else the day it was booked."""
        deposit, withdrawal = Deposit._meta.db_table, Withdrawal._meta.db_table
        provider_id = PaymentProvider.objects.get(code=CODE).pk
        batch_sql = batch or "to_char(booked AT TIME ZONE 'UTC', 'YYYYMMDD')"
        ours = (
            "SELECT substr(provider_reference, 4)::bigint AS g, provider_reference, reference, "
            f"amount, completed_at, 'Settled' AS type FROM {deposit} WHERE provider_id = %(p)s "
            "UNION ALL SELECT substr(provider_reference, 4)::bigint, provider_reference, "
            f"reference, -amount, completed_at, 'PaidOut' FROM {withdrawal} "
            "WHERE provider_id = %(p)s"
        )
        # Commission 1% on deposits (Adyen's blended pricing), none on payouts.
        lines = (
            "SELECT g, "
            "CASE WHEN g %% 1000 < 5 THEN 'NOTOURS' || g WHEN g %% 1000 BETWEEN 35 AND 39 "
            "THEN '' ELSE provider_reference END AS psp, "
            "CASE WHEN g %% 1000 BETWEEN 35 AND 39 THEN '' ELSE reference END AS merchant_ref, "
            "CASE WHEN g %% 1000 BETWEEN 30 AND 34 THEN completed_at + interval '5 days' "
            "ELSE completed_at + interval '1 hour' END AS booked, type, "
            "CASE WHEN g %% 1000 BETWEEN 15 AND 19 THEN 'USD' ELSE 'EUR' END AS ccy, "
            "CASE WHEN g %% 1000 < 5 THEN 100000 + g / 100.0 "
            "WHEN g %% 1000 BETWEEN 10 AND 14 THEN amount + 1 ELSE amount END AS gross, "
            "'M' || g AS modification "
            f"FROM ({ours}) ours WHERE ({day} AND g %% 1000 NOT BETWEEN 5 AND 9) OR {late} "
            "UNION ALL "
            # The duplicates: the same payment reported again the next day.
            "SELECT g, provider_reference, reference, completed_at + interval '1 day', type, "
            "'EUR', amount, 'MD' || g "
            f"FROM ({ours}) ours WHERE {day} AND g %% 1000 BETWEEN 25 AND 29"
        )
        sql = (
            f"WITH l AS ({lines}), "
            "f AS (SELECT *, round(CASE WHEN gross > 0 THEN gross * 0.01 ELSE 0 END, 2) AS fee, "
            f"{batch_sql} AS batch FROM l), "
            "rows AS ("
            "SELECT batch AS sort_batch, booked AS sort_booked, 0 AS sort_payout, "
            "'CasinoCompany', 'CasinoEU', psp, merchant_ref, "
            "'visa', to_char(booked AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), 'UTC', type, "
            "modification, ccy, "
            "CASE WHEN gross < 0 THEN (-gross)::numeric(20,2)::text ELSE '' END, "
            "CASE WHEN gross > 0 THEN gross::numeric(20,2)::text ELSE '' END, '1', ccy, "
            "CASE WHEN gross < 0 THEN (-gross)::numeric(20,2)::text ELSE '' END, "
            "CASE WHEN gross > 0 THEN (gross - fee)::numeric(20,2)::text ELSE '' END, "
            "CASE WHEN fee > 0 THEN fee::text ELSE '' END, '', '', '', 'visacredit', '', batch, "
            "'', '' FROM f "
            "UNION ALL "
            # One payout to our bank per daily batch and currency: what the batch nets to.
            "SELECT batch, max(booked) + interval '1 second', 1, 'CasinoCompany', 'CasinoEU', "
            "'', '', '', to_char(max(booked) AT TIME ZONE 'UTC' + interval '1 second', "
            "'YYYY-MM-DD HH24:MI:SS'), 'UTC', 'MerchantPayout', 'PO' || batch || ccy, ccy, "
            "'', '', '1', ccy, sum(gross - fee)::numeric(20,2)::text, '', '', '', '', '', '', '', "
            "batch, '', '' FROM f GROUP BY batch, ccy) "
            "SELECT * FROM rows ORDER BY sort_batch, sort_payout, sort_booked"
        )
        with connection.cursor() as cursor:
            query = cursor.mogrify(sql, {"p": provider_id}).decode()
            # Drop the three ordering columns on the way out.
            columns = ", ".join(f"c{i}" for i in range(4, 29))
            names = ", ".join(f"c{i}" for i in range(1, 29))
            with path.open("wb") as out:
                out.write(ADYEN_HEADER.encode() + b"\n")
                cursor.cursor.copy_expert(
                    f"COPY (SELECT {columns} FROM ({query}) AS r({names})) TO STDOUT "
                    "WITH (FORMAT csv)",
                    out,
                )
        with path.open("rb") as report:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: report.read(1 << 20), b"")) - 1

    # --- the timed part ----------------------------------------------------------------------

    def _timed_run(self, path: Path) -> float:
        statements: dict[str, list[float]] = defaultdict(list)

        def timer(execute, sql, params, many, context):
            begun = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                statements[" ".join(sql.split())[:90]].append(time.perf_counter() - begun)

        phases = {}
        with connection.execute_wrapper(timer):
            with _phase(phases, "receive (sha256 + store)"), path.open("rb") as content:
                report, _ = services.receive_report(
                    layout=SettlementImport.Layout.ADYEN,
                    provider_code=CODE,
                    file_name=path.name,
                    content=content,
                )
            with _phase(phases, "load (COPY + checks + normalized insert)"):
                report = services.load_report(settlement_import=report)
            with _phase(phases, "match + classify + breaks"):
                run = services.start_run(kind=ReconciliationRun.Kind.MATCH, provider_code=CODE)
                run = services.match_settlements(run=run)
        total = sum(phases.values())
        self.stdout.write(
            f"\nloaded {report.lines_loaded:,} lines ({report.lines_already_known:,} already "
            f"known); matching: {run.summary['matched']:,} matched, {run.summary['pending']:,} "
            f"pending, breaks {run.summary['breaks']}, "
            f"{run.summary['pending_transactions']:,} of ours pending"
        )
        for name, seconds in phases.items():
            self.stdout.write(f"  {name:<45} {seconds:7.2f} s")
        self.stdout.write(self.style.SUCCESS(f"  {'TOTAL import + matching':<45} {total:7.2f} s"))
        self.stdout.write("\nslowest statements:")
        ranked = sorted(statements.items(), key=lambda item: -sum(item[1]))[:12]
        for sql, times in ranked:
            self.stdout.write(f"  {sum(times):6.2f} s  x{len(times):<4} {sql}")
        return total

    # --- the floor: the least any design must do with the same file -------------------------

    def _floor(self, path: Path) -> tuple[float, float, dict]:
        """COPY the file into an unlogged table with no index, then one FULL JOIN with our
        transactions that classifies every line and every transaction. Returns (COPY
        seconds, join seconds, count per outcome)."""
        provider_id = PaymentProvider.objects.get(code=CODE).pk
        deposit, withdrawal = Deposit._meta.db_table, Withdrawal._meta.db_table
        columns = ", ".join(f"c{i} text" for i in range(1, len(ADYEN_HEADER.split(",")) + 1))
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS bench_floor")
            cursor.execute(f"CREATE UNLOGGED TABLE bench_floor ({columns})")
            begun = time.perf_counter()
            with path.open("rb") as content:
                cursor.cursor.copy_expert(
                    "COPY bench_floor FROM STDIN WITH (FORMAT csv, HEADER true)", content
                )
            copied = time.perf_counter()
            cursor.execute(
                "SELECT CASE WHEN t.id IS NULL THEN 'missing_in_ledger' "
                "WHEN r.psp IS NULL THEN 'missing_at_provider' "
                "WHEN r.ccy <> t.currency THEN 'currency_mismatch' "
                "WHEN NOT t.completed THEN 'status_mismatch' "
                "WHEN r.gross <> t.amount THEN 'amount_mismatch' "
                "WHEN abs(extract(epoch FROM r.booked - t.happened)) > 172800 "
                "THEN 'timing_difference' ELSE 'matched' END, count(*) FROM ("
                "SELECT c3 AS psp, c10 AS ccy, (c6 || 'Z')::timestamptz AS booked, "
                "coalesce(nullif(c12, '')::numeric, -nullif(c11, '')::numeric) AS gross "
                "FROM bench_floor WHERE c8 <> 'MerchantPayout') r FULL JOIN ("
                "SELECT provider_reference, id, currency_id AS currency, "
                "amount_received AS amount, status = 'succeeded' AS completed, "
                "completed_at AS happened "
                f"FROM {deposit} WHERE provider_id = %(p)s UNION ALL "
                "SELECT provider_reference, id, currency_id, -amount, status = 'paid', "
                f"completed_at FROM {withdrawal} WHERE provider_id = %(p)s) t "
                "ON t.provider_reference = r.psp GROUP BY 1 ORDER BY 1",
                {"p": provider_id},
            )
            outcomes = dict(cursor.fetchall())
            joined = time.perf_counter()
            cursor.execute("DROP TABLE bench_floor")
        return copied - begun, joined - copied, outcomes

    def _print_floor(self, floors: list[tuple[float, float, dict]], total: float) -> None:
        self.stdout.write(
            "\nfloor, same file, same run (COPY into an unlogged table, no index, "
            "+ one FULL JOIN classification):"
        )
        for when, (copy_s, join_s, outcomes) in zip(("before", "after"), floors, strict=True):
            self.stdout.write(
                f"  {when}: COPY {copy_s:.2f} s + FULL JOIN {join_s:.2f} s = "
                f"{copy_s + join_s:.2f} s  {outcomes}"
            )
        floor = min(copy_s + join_s for copy_s, join_s, _ in floors)
        self.stdout.write(
            self.style.SUCCESS(
                f"  import + matching {total:.2f} s / floor {floor:.2f} s = {total / floor:.1f}x"
                " (target <= 6x)"
            )
        )

    # --- daily reports ----------------------------------------------------------------------

    def _daily(self, days: int, per_day: int, *, work_breaks: bool) -> None:
        """`days` consecutive days of `per_day` transactions each, and each day's report:
        that day's lines with the planted breaks, the previous day's unreported payments
        (g % 1000 = 5) late, and from day 8 on those of a week before (g % 1000 = 6), older
        than the watermark: found by reference. Import + match of each day is timed."""
        self._create_provider()
        origin = (timezone.now() - timedelta(days=days + 3)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        self.stdout.write(
            f"{days} days of {per_day:,} transactions and their daily report "
            "(import + match timed; generation, VACUUM ANALYZE and CHECKPOINT between days not)"
        )
        tables = ", ".join(
            model._meta.db_table for model in (Deposit, Withdrawal, SettlementLine, LineMatch)
        )
        timings, slowest = [], {}
        with tempfile.TemporaryDirectory() as folder:
            for day in range(1, days + 1):
                first, last = (day - 1) * per_day + 1, day * per_day
                start = origin + timedelta(days=day - 1)
                self._insert_transactions(first, last, start, 86400 / per_day)
                late = []
                if day > 1:
                    late.append(f"(g BETWEEN {first - per_day} AND {first - 1} AND g %% 1000 = 5)")
                if day > 7:
                    late.append(
                        f"(g BETWEEN {first - 7 * per_day} AND {first - 6 * per_day - 1} "
                        "AND g %% 1000 = 6)"
                    )
                path = Path(folder) / f"day-{day:03d}.csv"
                lines = self._write_report(
                    path,
                    day=f"g BETWEEN {first} AND {last}",
                    late=" OR ".join(late) or "FALSE",
                    batch=f"'D{day:03d}'",
                )
                with connection.cursor() as cursor:
                    cursor.execute(f"VACUUM ANALYZE {tables}")
                    cursor.execute("CHECKPOINT")
                statements: dict[str, list[float]] = defaultdict(list)

                def timer(execute, sql, params, many, context, statements=statements):
                    begun = time.perf_counter()
                    try:
                        return execute(sql, params, many, context)
                    finally:
                        statements[" ".join(sql.split())[:90]].append(time.perf_counter() - begun)

                with connection.execute_wrapper(timer):
                    begun = time.perf_counter()
                    with path.open("rb") as content:
                        report, _ = services.receive_report(
                            layout=SettlementImport.Layout.ADYEN,
                            provider_code=CODE,
                            file_name=path.name,
                            content=content,
                        )
                    report = services.load_report(settlement_import=report)
                    loaded = time.perf_counter()
                    run = services.match_settlements(
                        run=services.start_run(
                            kind=ReconciliationRun.Kind.MATCH, provider_code=CODE
                        ),
                        as_of=start + timedelta(days=1, hours=6),
                    )
                    done = time.perf_counter()
                if day in (1, days):
                    slowest[day] = sorted(statements.items(), key=lambda item: -sum(item[1]))[:8]
                open_breaks = Break.objects.filter(
                    provider_code=CODE, status__in=Break.ACTIVE
                ).count()
                if work_breaks:
                    self._work_breaks()
                path.unlink()
                timings.append(done - begun)
                working = run.summary["working_set"]
                self.stdout.write(
                    f"day {day:>2}: {done - begun:5.1f} s  (load {loaded - begun:4.1f} + match "
                    f"{done - loaded:4.1f}; {lines:,} lines in the file; working set: "
                    f"{working['new_lines']:,} new + {working['open_lines']:,} open lines, "
                    f"{working['transactions']:,} of ours "
                    f"({working['transactions_by_reference']:,} by reference); "
                    f"{open_breaks:,} open breaks)"
                )
                self.stdout.flush()
        for day, ranked in slowest.items():
            self.stdout.write(f"slowest statements of day {day}:")
            for sql, times in ranked:
                self.stdout.write(f"  {sum(times):6.2f} s  x{len(times):<4} {sql}")
        first_day, last_day = timings[0], timings[-1]
        self.stdout.write(
            self.style.SUCCESS(
                f"last day / first day: {last_day:.1f} s / {first_day:.1f} s = "
                f"{last_day / first_day:.2f}x (target <= 1.25x)"
            )
        )
        if len(timings) >= 6:
            head, tail = sum(timings[:3]) / 3, sum(timings[-3:]) / 3
            self.stdout.write(
                f"mean of the last 3 days / mean of the first 3: {tail:.1f} s / {head:.1f} s = "
                f"{tail / head:.2f}x"
            )

    def _work_breaks(self) -> None:
        """Finance works the day's breaks (untimed): every open break is accepted as the
        provider reported it. In bulk, for the benchmark's scratch data, doing exactly what
        `services.resolve_break(resolution="accepted")` does row by row (no money moves): the
        break resolved with its audit row, and a line break's line settled for good."""
        brk, transition = Break._meta.db_table, BreakTransition._meta.db_table
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"WITH closed AS (UPDATE {brk} SET status = 'resolved', resolution = 'accepted', "
                "closed_at = now() WHERE provider_code = %s AND status = 'open' "
                "RETURNING id, line_id), audited AS ("
                f"INSERT INTO {transition} (brk_id, from_status, to_status, actor_id, reason, "
                "created_at) SELECT id, 'open', 'resolved', NULL, 'benchmark: accepted', now() "
                f"FROM closed) UPDATE {LineMatch._meta.db_table} m SET status = 'resolved' "
                "FROM closed WHERE m.line_id = closed.line_id",
                [CODE],
            )

    def _reset(self) -> None:
        """Remove a previous run's data (the benchmark's provider only), in SQL: deleting a
        million rows through the ORM would load them all first."""
        tables = {
            "line": SettlementLine._meta.db_table,
            "match": LineMatch._meta.db_table,
            "brk": Break._meta.db_table,
            "transition": BreakTransition._meta.db_table,
            "deposit": Deposit._meta.db_table,
            "withdrawal": Withdrawal._meta.db_table,
            "refund": Refund._meta.db_table,
            "chargeback": Chargeback._meta.db_table,
        }
        provider = PaymentProvider.objects.filter(code=CODE).first()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {tables['transition']} WHERE brk_id IN "
                f"(SELECT id FROM {tables['brk']} WHERE provider_code = %s)",
                [CODE],
            )
            cursor.execute(f"DELETE FROM {tables['brk']} WHERE provider_code = %s", [CODE])
            cursor.execute(
                f"DELETE FROM {tables['match']} WHERE line_id IN "
                f"(SELECT id FROM {tables['line']} WHERE provider_code = %s)",
                [CODE],
            )
            cursor.execute(f"DELETE FROM {tables['line']} WHERE provider_code = %s", [CODE])
            for stored in SettlementImport.objects.filter(provider_code=CODE):
                # The stored report (161 MB) would outlive its row otherwise.
                stored.file.delete(save=False)
            SettlementImport.objects.filter(provider_code=CODE).delete()
            MatchingWatermark.objects.filter(provider_code=CODE).delete()
            DailyLineTotal.objects.filter(provider_code=CODE).delete()
            DirtyLineDay.objects.filter(provider_code=CODE).delete()
            ReconciliationRun.objects.filter(provider_code=CODE).delete()
            if provider is not None:
                for name in ("refund", "chargeback"):
                    cursor.execute(
                        f"DELETE FROM {tables[name]} WHERE deposit_id IN "
                        f"(SELECT id FROM {tables['deposit']} WHERE provider_id = %s)",
                        [provider.pk],
                    )
                for name in ("withdrawal", "deposit"):
                    cursor.execute(
                        f"DELETE FROM {tables[name]} WHERE provider_id = %s", [provider.pk]
                    )
                PayoutInstrument.objects.filter(provider=provider).delete()
                PaymentMethod.objects.filter(provider=provider).delete()
                provider.delete()
            Player.objects.filter(external_id__startswith="bench-").delete()


@contextmanager
def _phase(phases: dict, name: str):
    begun = time.perf_counter()
    yield
    phases[name] = time.perf_counter() - begun
