"""Our sandbox providers' daily settlement file, produced from what payments processed.

The sandbox lives in payments, which may not import reconciliation, so the file is produced
here from payments' tables (one COPY … TO STDOUT, no Python per row) in the layout
`layouts.SANDBOX` reads: one line per deposit settled, refund, chargeback and payout to a
player that day, the provider's fee on each deposit (its `fee_percent` and `fee_fixed`), and
one payout to the operator's bank per currency for the day's batch.
"""

import io
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection

from payments.models import Chargeback, Deposit, PaymentProvider, Refund, Withdrawal
from wallets.models import Currency

from ..layouts import SANDBOX_COLUMNS
from ..models import SettlementImport
from .importing import receive_report
from .matching import COMPLETED_DEPOSIT


def sandbox_provider_codes() -> list[str]:
    """Providers served by our own sandbox (their API base URL is one of its routes)."""
    return [
        provider.code
        for provider in PaymentProvider.objects.all()
        if f"/sandbox/{provider.code}/" in provider.api_base_url
    ]


def build_settlement_file(*, provider_code: str, day: date) -> bytes:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    deposit, refund = Deposit._meta.db_table, Refund._meta.db_table
    withdrawal, chargeback = Withdrawal._meta.db_table, Chargeback._meta.db_table
    provider, currency = PaymentProvider._meta.db_table, Currency._meta.db_table
    completed = ", ".join(f"'{status}'" for status in COMPLETED_DEPOSIT)
    batch = f"'{provider_code}-{day:%Y%m%d}-' || currency"
    lines = (
        # Deposits: the provider keeps fee_percent of the gross plus fee_fixed.
        "SELECT 'payment' AS record_type, d.provider_reference, "
        "d.provider_reference AS payment_reference, d.reference AS merchant_reference, "
        "d.currency_id AS currency, coalesce(d.amount_received, d.amount) AS gross, "
        "round(coalesce(d.amount_received, d.amount) * p.fee_percent / 100 + p.fee_fixed, "
        "c.exponent) AS fee, d.completed_at AS booked_at "
        f"FROM {deposit} d JOIN {provider} p ON p.id = d.provider_id "
        f"JOIN {currency} c ON c.code = d.currency_id "
        f"WHERE p.code = %(code)s AND d.status IN ({completed}) "
        "AND d.completed_at >= %(start)s AND d.completed_at < %(end)s "
        "UNION ALL "
        "SELECT 'refund', r.provider_reference, d.provider_reference, d.reference, "
        "d.currency_id, -r.amount, 0, r.completed_at "
        f"FROM {refund} r JOIN {deposit} d ON d.id = r.deposit_id "
        f"JOIN {provider} p ON p.id = d.provider_id "
        f"WHERE p.code = %(code)s AND r.status = '{Refund.Status.SUCCEEDED}' "
        "AND r.completed_at >= %(start)s AND r.completed_at < %(end)s "
        "UNION ALL "
        "SELECT 'chargeback', cb.provider_reference, d.provider_reference, d.reference, "
        "d.currency_id, -cb.amount, 0, coalesce(cb.occurred_at, cb.created_at) "
        f"FROM {chargeback} cb JOIN {deposit} d ON d.id = cb.deposit_id "
        f"JOIN {provider} p ON p.id = d.provider_id "
        "WHERE p.code = %(code)s AND coalesce(cb.occurred_at, cb.created_at) >= %(start)s "
        "AND coalesce(cb.occurred_at, cb.created_at) < %(end)s "
        "UNION ALL "
        "SELECT 'player_payout', w.provider_reference, '', w.reference, w.currency_id, "
        "-w.amount, 0, w.completed_at "
        f"FROM {withdrawal} w JOIN {provider} p ON p.id = w.provider_id "
        f"WHERE p.code = %(code)s AND w.status = '{Withdrawal.Status.PAID}' "
        "AND w.completed_at >= %(start)s AND w.completed_at < %(end)s"
    )
    sql = (
        "WITH lines AS (" + lines + "), batched AS ("
        f"SELECT *, gross - fee AS net, {batch} AS batch FROM lines), "
        "payouts AS (SELECT 'merchant_payout' AS record_type, "
        "'PO-' || batch AS provider_reference, '' AS payment_reference, "
        "'' AS merchant_reference, currency, -sum(net) AS gross, 0 AS fee, "
        "%(end)s::timestamptz - interval '1 second' AS booked_at, -sum(net) AS net, batch "
        "FROM batched GROUP BY currency, batch HAVING sum(net) <> 0) "
        # Amounts at the currency's exponent: the stored scale (8) is not what a file says.
        "SELECT %(code)s AS provider, record_type, provider_reference, payment_reference, "
        "merchant_reference, currency, round(gross, c.exponent), round(fee, c.exponent), "
        "round(net, c.exponent), "
        "to_char(booked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), batch "
        "FROM (SELECT record_type, provider_reference, payment_reference, merchant_reference, "
        "currency, gross, fee, booked_at, net, batch FROM batched "
        f"UNION ALL SELECT * FROM payouts) settled JOIN {currency} c ON c.code = settled.currency "
        "ORDER BY batch, booked_at, record_type"
    )
    with connection.cursor() as cursor:
        query = cursor.mogrify(sql, {"code": provider_code, "start": start, "end": end})
        body = io.BytesIO()
        cursor.cursor.copy_expert(f"COPY ({query.decode()}) TO STDOUT WITH (FORMAT csv)", body)
    header = ",".join(SANDBOX_COLUMNS).encode() + b"\n"
    return header + body.getvalue()


def produce_sandbox_settlement(*, provider_code: str, day: date) -> tuple[SettlementImport, bool]:
    """Build and receive one sandbox provider's file for `day` (a day already produced comes
    back unchanged: same content, same checksum)."""
    content = build_settlement_file(provider_code=provider_code, day=day)
    return receive_report(
        layout=SettlementImport.Layout.SANDBOX,
        provider_code=provider_code,
        file_name=f"{provider_code}-settlement-{day:%Y-%m-%d}.csv",
        content=content,
    )
