"""Settlement postings: what the provider kept and what it paid out, booked through the ledger.

Once lines are matched, the provider's clearing account still carries their gross. Booking
the fees the provider kept (clearing → `fees`) and each payout to our bank (clearing →
`operator_bank`) leaves the clearing account holding exactly what is still in transit: money
the provider has for us that has not reached the bank yet.

Fees are booked per provider, currency and batch (one entry for a day's batch, not one per
line); payouts one entry per payout line. `SettlementPosting` records which entry booked each
line, so a line is booked once; the idempotency keys make a replayed group return its entry.
"""

import hashlib

from django.db import connection, transaction
from django.utils import timezone

from wallets import services as ledger
from wallets.models import Account, JournalEntry
from wallets.money import quantize_money

from ..models import LineMatch, ReconciliationRun, SettlementLine, SettlementPosting
from ..progress import Progress

LINE = SettlementLine._meta.db_table
MATCH = LineMatch._meta.db_table
POSTING = SettlementPosting._meta.db_table
RT = SettlementLine.RecordType


def _fee_groups(provider_code: str) -> list[tuple]:
    """Matched or resolved lines whose fee is not booked yet, per provider/currency/batch.

    A line settled in another currency than its gross is a currency-mismatch break until an
    operator resolves it, and its fee is booked in the currency it was charged in."""
    scope = "AND l.provider_code = %s" if provider_code else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT l.provider_code, l.net_currency, l.batch, array_agg(l.id ORDER BY l.id), "
            "sum(l.fee) "
            f"FROM {LINE} l JOIN {MATCH} m ON m.line_id = l.id AND m.status IN (%s, %s) "
            f"WHERE l.record_type <> %s AND l.fee <> 0 {scope} "
            f"AND NOT EXISTS (SELECT 1 FROM {POSTING} p WHERE p.line_id = l.id) "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            [
                LineMatch.Status.MATCHED,
                LineMatch.Status.RESOLVED,
                RT.MERCHANT_PAYOUT,
                *([provider_code] if provider_code else []),
            ],
        )
        return cursor.fetchall()


def _payout_lines(provider_code: str) -> list[SettlementLine]:
    lines = SettlementLine.objects.filter(
        record_type=RT.MERCHANT_PAYOUT, posting__isnull=True
    ).exclude(net=0)
    if provider_code:
        lines = lines.filter(provider_code=provider_code)
    return list(lines.order_by("id"))


def _book(*, kind: str, line_ids: list[int], entry: JournalEntry) -> None:
    SettlementPosting.objects.bulk_create(
        [SettlementPosting(line_id=line_id, kind=kind, entry=entry) for line_id in line_ids]
    )


def book_fees(*, provider_code: str, currency: str, batch: str, line_ids: list[int], total):
    """Book what the provider kept on these lines: clearing +total, fees -total.
    Inside the caller's transaction, which holds the provider's settlement lock."""
    clearing = ledger.system_account(
        kind=Account.Kind.PROVIDER_CLEARING, currency=currency, system_code=provider_code
    )
    fees = ledger.system_account(
        kind=Account.Kind.FEES, currency=currency, system_code=provider_code
    )
    amount = quantize_money(total, currency)
    # The same set of lines always makes the same key: a replay returns the first entry.
    digest = hashlib.sha256(",".join(map(str, line_ids)).encode()).hexdigest()[:32]
    entry = ledger.post_entry(
        kind=JournalEntry.Kind.PROVIDER_FEE,
        legs=[(clearing, amount), (fees, -amount)],
        idempotency_key=f"recon-fees:{provider_code}:{currency}:{digest}",
        request={"provider": provider_code, "currency": currency, "lines": digest},
        external_reference=batch,
        metadata={"batch": batch, "lines": len(line_ids), "amount": str(amount)},
    )
    _book(kind=SettlementPosting.Kind.FEE, line_ids=line_ids, entry=entry)
    return entry


def book_payout(*, line: SettlementLine) -> JournalEntry:
    """The provider paid `-line.net` to our bank: clearing +amount, operator bank -amount.
    A negative payout (we topped the provider up) books the other way round."""
    currency = line.net_currency
    amount = quantize_money(-line.net, currency)
    clearing = ledger.system_account(
        kind=Account.Kind.PROVIDER_CLEARING, currency=currency, system_code=line.provider_code
    )
    bank = ledger.system_account(
        kind=Account.Kind.OPERATOR_BANK, currency=currency, system_code=line.provider_code
    )
    entry = ledger.post_entry(
        kind=JournalEntry.Kind.SETTLEMENT_PAYOUT,
        legs=[(clearing, amount), (bank, -amount)],
        idempotency_key=f"recon-payout:{line.provider_code}:{line.pk}",
        request={"line": line.pk, "amount": str(amount), "currency": currency},
        external_reference=line.provider_reference or line.batch,
        metadata={"batch": line.batch, "payout": line.provider_reference},
    )
    _book(kind=SettlementPosting.Kind.PAYOUT, line_ids=[line.pk], entry=entry)
    return entry


def _lock_provider(provider_code: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [0x5E79, provider_code])


def settle(*, run: ReconciliationRun) -> ReconciliationRun:
    """Book fees of matched lines and every payout line of the run's provider (all when
    blank). Each group is its own transaction under the provider's settlement lock, so a
    failure keeps what was booked and a second run books only the rest."""
    ReconciliationRun.objects.filter(pk=run.pk).update(
        status=ReconciliationRun.Status.RUNNING, started_at=timezone.now(), phase="fees"
    )
    fee_entries = payout_entries = 0
    try:
        with Progress(ReconciliationRun, run.pk) as progress:
            groups = _fee_groups(run.provider_code)
            payouts = _payout_lines(run.provider_code)
            total = len(groups) + len(payouts)
            progress.update(force=True, rows_total=total, rows_processed=0)
            for done, (provider_code, currency, batch, line_ids, fee_total) in enumerate(groups):
                with transaction.atomic():
                    _lock_provider(provider_code)
                    # Another run may have booked these while we waited for the lock.
                    if SettlementPosting.objects.filter(line_id__in=line_ids).exists():
                        continue
                    if fee_total:
                        book_fees(
                            provider_code=provider_code,
                            currency=currency,
                            batch=batch,
                            line_ids=line_ids,
                            total=fee_total,
                        )
                        fee_entries += 1
                progress.update(rows_processed=done + 1)
            progress.update(force=True, phase="payouts")
            for done, line in enumerate(payouts, start=len(groups)):
                with transaction.atomic():
                    _lock_provider(line.provider_code)
                    if SettlementPosting.objects.filter(line_id=line.pk).exists():
                        continue
                    book_payout(line=line)
                    payout_entries += 1
                progress.update(rows_processed=done + 1)
            progress.update(force=True, rows_processed=total)
    except Exception as error:
        ReconciliationRun.objects.filter(pk=run.pk).update(
            status=ReconciliationRun.Status.FAILED,
            error=str(error)[:2000],
            finished_at=timezone.now(),
        )
        raise
    ReconciliationRun.objects.filter(pk=run.pk).update(
        status=ReconciliationRun.Status.DONE,
        phase="done",
        summary={"fee_entries": fee_entries, "payout_entries": payout_entries},
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run
