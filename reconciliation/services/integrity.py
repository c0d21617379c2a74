"""The ledger integrity job: the ledger's own invariants, and each provider's clearing
account against what the provider's reports say is in transit.

Incremental: what the providers reported is summed per provider, day and currency
(`DailyLineTotal`); loads mark the days they add lines to and each run re-sums only those,
so an hourly run does not read a year of lines.

In transit, by the ledger: minus the clearing balance (a deposit debits clearing, fees,
payouts, refunds, chargebacks and player payouts credit it).
In transit, by the provider: the net of every line it reported minus what it says it paid to
our bank (its payout lines, or for a report that lists a payout only through the lines it
settles, the payout derived per batch at loading), plus what we booked that it has not
reported yet but is still inside the grace period. Anything else (a break, a line not yet
settled, a transaction the provider never reported) shows up as a difference.

Paid out, separately: what the provider says it paid to our bank against what the ledger
booked to `operator_bank` from this provider. A payout the provider made that settlement has
not booked shows on both lines. Each run is stored and a difference raises an alert.
"""

from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from wallets import selectors as ledger_selectors
from wallets.models import Account, BalanceDelta
from wallets.money import quantize_money

from ..models import (
    Break,
    DailyLineTotal,
    DirtyLineDay,
    IntegrityAlert,
    IntegrityRun,
    LineMatch,
    SettlementLine,
)
from .matching import create_policy_table, our_transactions_sql

TOTAL = DailyLineTotal._meta.db_table
DIRTY = DirtyLineDay._meta.db_table
LINE = SettlementLine._meta.db_table
# Our booked transactions the provider has not reported yet and is not late with: after the
# end of what its reports cover, minus the grace period (all of them before its first report).
NOT_DUE_YET = "(pol.covered_to IS NULL OR {at} > pol.covered_to - pol.grace)"


def refresh_daily_totals() -> int:
    """Re-sum the `DailyLineTotal` rows of the days loads marked dirty, from those days'
    lines only (a range of the line key's index per day), and clear the marks. One
    transaction: a load committing meanwhile leaves its own mark, so its lines are summed by
    this run or the next, never lost; re-summing a day twice gives the same total. Returns
    how many provider days were summed."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE recon_dirty ON COMMIT DROP AS WITH taken AS ("
            f"DELETE FROM {DIRTY} RETURNING provider_code, day) "
            "SELECT DISTINCT provider_code, day FROM taken"
        )
        cursor.execute("SELECT count(*) FROM recon_dirty")
        days = cursor.fetchone()[0]
        if days:
            cursor.execute(
                f"DELETE FROM {TOTAL} t USING recon_dirty d "
                "WHERE t.provider_code = d.provider_code AND t.day = d.day"
            )
            # Per day a range of (provider_code, booked_at, …): the unique key's index.
            cursor.execute(
                f"INSERT INTO {TOTAL} (provider_code, day, currency, lines, net, paid_out, "
                "summed_at) SELECT d.provider_code, d.day, s.currency, s.lines, s.net, "
                "s.paid_out, now() FROM recon_dirty d CROSS JOIN LATERAL ("
                "SELECT l.net_currency AS currency, count(*) AS lines, sum(l.net) AS net, "
                "coalesce(-sum(l.net) FILTER (WHERE l.record_type = %s), 0) AS paid_out "
                f"FROM {LINE} l WHERE l.provider_code = d.provider_code "
                "AND l.booked_at >= d.day::timestamp AT TIME ZONE 'UTC' "
                "AND l.booked_at < (d.day + 1)::timestamp AT TIME ZONE 'UTC' "
                "GROUP BY l.net_currency) s",
                [SettlementLine.RecordType.MERCHANT_PAYOUT],
            )
        cursor.execute("DROP TABLE recon_dirty")
    return days


def clearing_comparison() -> list[dict]:
    """Per provider and currency with a clearing account: both in-transit figures (the days
    loads marked are re-summed first)."""
    refresh_daily_totals()
    accounts = Account.objects.filter(kind=Account.Kind.PROVIDER_CLEARING, owner=None)
    codes = sorted(set(accounts.values_list("system_code", flat=True)))
    if not codes:
        return []
    with transaction.atomic():
        create_policy_table(codes)
        with connection.cursor() as cursor:
            # What the provider reported: its daily totals (kept current by
            # `refresh_daily_totals`), not every line it ever sent.
            cursor.execute(
                f"SELECT provider_code, currency, sum(net), sum(paid_out) FROM {TOTAL} "
                "WHERE provider_code = ANY(%s) GROUP BY 1, 2",
                [codes],
            )
            by_provider, paid_by_provider = {}, {}
            for code, ccy, net, paid_out in cursor.fetchall():
                by_provider[(code, ccy)] = net
                paid_by_provider[(code, ccy)] = paid_out
            # Plus our booked transactions not reported yet and not due yet. A transaction
            # the provider never reported is a difference however old it is: unreported and
            # due, it is in neither sum. Whether a line took one is an index probe per
            # transaction, not a join with every outcome ever written.
            cursor.execute("SET LOCAL enable_hashjoin = off")
            cursor.execute("SET LOCAL enable_mergejoin = off")
            cursor.execute(
                "SELECT t.provider_code, t.currency, sum(t.amount) "
                f"FROM ({our_transactions_sql(NOT_DUE_YET)}) t "
                "WHERE t.is_booked AND NOT EXISTS (SELECT 1 FROM "
                f"{LineMatch._meta.db_table} m WHERE m.internal_id = t.id "
                "AND m.internal_kind = t.kind) GROUP BY 1, 2"
            )
            for code, ccy, amount in cursor.fetchall():
                by_provider[(code, ccy)] = by_provider.get((code, ccy), 0) + amount
            cursor.execute("SET LOCAL enable_hashjoin = on")
            cursor.execute("SET LOCAL enable_mergejoin = on")
            cursor.execute("DROP TABLE recon_policy")
    banks = {
        (account.system_code, account.currency_id): account
        for account in Account.objects.filter(
            kind=Account.Kind.OPERATOR_BANK, owner=None, system_code__in=codes
        )
    }
    pending = dict(
        BalanceDelta.objects.filter(account__in=[*accounts, *banks.values()])
        .values("account_id")
        .annotate(s=Sum("amount"))
        .values_list("account_id", "s")
    )
    open_breaks = {}
    for code, currency in Break.objects.filter(status__in=Break.ACTIVE).values_list(
        "provider_code", "currency"
    ):
        open_breaks[(code, currency)] = open_breaks.get((code, currency), 0) + 1
    rows = []
    for account in accounts.order_by("system_code", "currency_id"):
        key = (account.system_code, account.currency_id)
        currency = account.currency_id
        ledger_in_transit = quantize_money(
            -(account.balance + (pending.get(account.pk) or 0)), currency
        )
        provider_in_transit = quantize_money(by_provider.get(key) or Decimal(0), currency)
        bank = banks.get(key)
        ledger_paid_out = quantize_money(
            -(bank.balance + (pending.get(bank.pk) or 0)) if bank else Decimal(0), currency
        )
        provider_paid_out = quantize_money(paid_by_provider.get(key) or Decimal(0), currency)
        rows.append(
            {
                "provider": account.system_code,
                "currency": account.currency_id,
                "ledger_in_transit": str(ledger_in_transit),
                "provider_in_transit": str(provider_in_transit),
                "difference": str(ledger_in_transit - provider_in_transit),
                "ledger_paid_out": str(ledger_paid_out),
                "provider_paid_out": str(provider_paid_out),
                "paid_out_difference": str(ledger_paid_out - provider_paid_out),
                "open_breaks": open_breaks.get(key, 0),
            }
        )
    return rows


def run_integrity_check() -> IntegrityRun:
    """Run both checks, store the run, and raise an admin alert for each problem found."""
    run = IntegrityRun.objects.create()
    problems = ledger_selectors.ledger_problems()
    days_resummed = refresh_daily_totals()
    comparison = clearing_comparison()
    messages = [f"Ledger: {problem}" for problem in problems]
    messages += [
        f"Clearing {row['provider']} {row['currency']}: the ledger has "
        f"{row['ledger_in_transit']} in transit, the provider's reports "
        f"{row['provider_in_transit']} (difference {row['difference']}; "
        f"{row['open_breaks']} open break(s))."
        for row in comparison
        if Decimal(row["difference"]) != 0
    ]
    messages += [
        f"Payouts {row['provider']} {row['currency']}: the provider's reports say it paid "
        f"{row['provider_paid_out']} to our bank, the ledger booked {row['ledger_paid_out']} "
        f"to operator_bank (difference {row['paid_out_difference']})."
        for row in comparison
        if Decimal(row["paid_out_difference"]) != 0
    ]
    with transaction.atomic():
        IntegrityRun.objects.filter(pk=run.pk).update(
            finished_at=timezone.now(),
            is_clean=not messages,
            ledger_problems=[str(problem) for problem in problems],
            clearing_comparison=comparison,
            days_resummed=days_resummed,
        )
        IntegrityAlert.objects.bulk_create(
            [IntegrityAlert(run=run, message=message) for message in messages]
        )
    run.refresh_from_db()
    return run


def acknowledge_alert(*, alert: IntegrityAlert, actor) -> IntegrityAlert:
    IntegrityAlert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(
        acknowledged_by=actor, acknowledged_at=timezone.now()
    )
    alert.refresh_from_db()
    return alert
