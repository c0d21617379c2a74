"""Reads: the daily report per provider, break aging, alerts."""

import csv
import io
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from wallets.money import quantize_money

from .models import Break, BreakType, IntegrityAlert, LineMatch, SettlementLine

AGING_BUCKETS = ("0-1 days", "2-7 days", "8-30 days", ">30 days")


def aging_bucket(detected_at: datetime, now: datetime | None = None) -> str:
    days = ((now or timezone.now()) - detected_at).days
    if days <= 1:
        return AGING_BUCKETS[0]
    if days <= 7:
        return AGING_BUCKETS[1]
    if days <= 30:
        return AGING_BUCKETS[2]
    return AGING_BUCKETS[3]


def break_aging(*, provider_code: str = "", now: datetime | None = None) -> dict:
    """Active breaks by type and age: {break_type: {bucket: (count, sum of |difference|)}}."""
    now = now or timezone.now()
    scope = "AND provider_code = %s" if provider_code else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT break_type, CASE "
            "WHEN %s - detected_at < interval '2 days' THEN 0 "
            "WHEN %s - detected_at < interval '8 days' THEN 1 "
            "WHEN %s - detected_at < interval '31 days' THEN 2 ELSE 3 END, "
            f"count(*), sum(abs(difference)) FROM {Break._meta.db_table} "
            f"WHERE status IN ('open', 'investigating', 'awaiting_approval') {scope} "
            "GROUP BY 1, 2",
            [now, now, now, *([provider_code] if provider_code else [])],
        )
        rows = cursor.fetchall()
    aging: dict = {t: {b: (0, Decimal(0)) for b in AGING_BUCKETS} for t in BreakType.values}
    for break_type, bucket, count, total in rows:
        aging[break_type][AGING_BUCKETS[bucket]] = (count, total)
    return aging


@dataclass(frozen=True)
class DailyRow:
    day: date
    provider: str
    currency: str
    lines: int
    matched: int
    matched_gross: Decimal
    pending: int
    pending_gross: Decimal
    unmatched: int
    unmatched_gross: Decimal
    missing_in_ledger: int
    missing_at_provider: int
    amount_mismatch: int
    currency_mismatch: int
    status_mismatch: int
    duplicate: int
    timing_difference: int
    fees: Decimal
    net: Decimal


def daily_report(*, date_from: date, date_to: date, provider_code: str = "") -> list[DailyRow]:
    """Per provider, day (of the provider's booking) and currency: lines matched, pending and
    in breaks (by type), with gross sums, fees and net. Our transactions the provider never
    reported count on the day of the break's detection (they have no line)."""
    line, match = SettlementLine._meta.db_table, LineMatch._meta.db_table
    brk = Break._meta.db_table
    scope = "AND l.provider_code = %(provider)s" if provider_code else ""
    break_scope = "AND b.provider_code = %(provider)s" if provider_code else ""
    per_type = ", ".join(
        f"count(*) FILTER (WHERE m.break_type = '{t}') AS {t}"
        for t in BreakType.values
        if t != BreakType.MISSING_AT_PROVIDER
    )
    sql = (
        "WITH per_line AS ("
        "SELECT (l.booked_at AT TIME ZONE 'UTC')::date AS day, l.provider_code, l.currency, "
        "count(*) AS lines, "
        "count(*) FILTER (WHERE m.status IN ('matched', 'resolved')) AS matched, "
        "coalesce(sum(l.gross) FILTER (WHERE m.status IN ('matched', 'resolved')), 0) "
        "AS matched_gross, "
        "count(*) FILTER (WHERE m.status = 'pending') AS pending, "
        "coalesce(sum(l.gross) FILTER (WHERE m.status = 'pending'), 0) AS pending_gross, "
        "count(*) FILTER (WHERE m.status = 'break' OR m.status IS NULL) AS unmatched, "
        "coalesce(sum(l.gross) FILTER (WHERE m.status = 'break' OR m.status IS NULL), 0) "
        f"AS unmatched_gross, {per_type}, sum(l.fee) AS fees, sum(l.net) AS net "
        f"FROM {line} l LEFT JOIN {match} m ON m.line_id = l.id "
        "WHERE l.booked_at >= %(start)s AND l.booked_at < %(end)s " + scope + " GROUP BY 1, 2, 3), "
        "missing AS (SELECT (b.detected_at AT TIME ZONE 'UTC')::date AS day, b.provider_code, "
        "b.currency, count(*) AS missing_at_provider "
        f"FROM {brk} b WHERE b.break_type = 'missing_at_provider' "
        "AND b.status IN ('open', 'investigating', 'awaiting_approval') "
        "AND b.detected_at >= %(start)s AND b.detected_at < %(end)s " + break_scope + " "
        "GROUP BY 1, 2, 3) "
        "SELECT coalesce(p.day, x.day), coalesce(p.provider_code, x.provider_code), "
        "coalesce(p.currency, x.currency), coalesce(p.lines, 0), coalesce(p.matched, 0), "
        "coalesce(p.matched_gross, 0), coalesce(p.pending, 0), coalesce(p.pending_gross, 0), "
        "coalesce(p.unmatched, 0), coalesce(p.unmatched_gross, 0), "
        "coalesce(p.missing_in_ledger, 0), coalesce(x.missing_at_provider, 0), "
        "coalesce(p.amount_mismatch, 0), coalesce(p.currency_mismatch, 0), "
        "coalesce(p.status_mismatch, 0), coalesce(p.duplicate, 0), "
        "coalesce(p.timing_difference, 0), coalesce(p.fees, 0), coalesce(p.net, 0) "
        "FROM per_line p FULL JOIN missing x ON x.day = p.day "
        "AND x.provider_code = p.provider_code AND x.currency = p.currency "
        "ORDER BY 1, 2, 3"
    )
    start = datetime.combine(date_from, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(date_to, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"start": start, "end": end, "provider": provider_code})
        rows = cursor.fetchall()
    # Sums come at the column's scale (8); a report speaks in the currency's.
    return [
        DailyRow(
            *(
                quantize_money(value, row[2]) if isinstance(value, Decimal) else value
                for value in row
            )
        )
        for row in rows
    ]


def daily_report_csv(rows: list[DailyRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    names = [f.name for f in fields(DailyRow)]
    writer.writerow(names)
    for row in rows:
        writer.writerow([getattr(row, name) for name in names])
    return buffer.getvalue()


def open_alerts():
    return IntegrityAlert.objects.filter(acknowledged_at__isnull=True).select_related("run")
