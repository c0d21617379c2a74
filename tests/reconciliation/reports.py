"""Settlement report files in the providers' real column layouts, written by the tests.

Each writer takes rows as dicts keyed by the layout's column names; missing columns are
written blank, so a test states only what it cares about.
"""

import csv
import io

ADYEN_COLUMNS = [
    "Company Account",
    "Merchant Account",
    "Psp Reference",
    "Merchant Reference",
    "Payment Method",
    "Creation Date",
    "TimeZone",
    "Type",
    "Modification Reference",
    "Gross Currency",
    "Gross Debit (GC)",
    "Gross Credit (GC)",
    "Exchange Rate",
    "Net Currency",
    "Net Debit (NC)",
    "Net Credit (NC)",
    "Commission (NC)",
    "Markup (NC)",
    "Scheme Fees (NC)",
    "Interchange (NC)",
    "Payment Method Variant",
    "Modification Merchant Reference",
    "Batch Number",
    "Reserved4",
    "Reserved5",
]

STRIPE_COLUMNS = [
    "automatic_payout_id",
    "automatic_payout_effective_at",
    "balance_transaction_id",
    "created_utc",
    "created",
    "available_on_utc",
    "available_on",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
    "description",
    "customer_facing_amount",
    "customer_facing_currency",
    "charge_id",
    "payment_intent_id",
    "charge_created_utc",
    "payment_metadata[reference]",
]

SANDBOX_COLUMNS = [
    "provider",
    "record_type",
    "provider_reference",
    "payment_reference",
    "merchant_reference",
    "currency",
    "gross",
    "fee",
    "net",
    "booked_at",
    "batch",
]


def write_csv(
    columns: list[str],
    rows: list[dict],
    *,
    bom: bool = False,
    crlf: bool = False,
    extra_columns: dict | None = None,
    order: list[str] | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8",
    trailer: list[list[str]] | None = None,
) -> bytes:
    """Rows as a CSV file. `extra_columns` adds columns we do not read (with a fixed value),
    `order` reorders the columns the way a provider's report designer might; `delimiter`
    and `encoding` are the export's settings; `trailer` lines (raw cells) follow the rows,
    as the totals a spreadsheet or a report designer appends."""
    header = list(order or columns) + list(extra_columns or {})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n", delimiter=delimiter)
    writer.writerow(header)
    for row in rows:
        values = {**(extra_columns or {}), **row}
        writer.writerow([values.get(name, "") for name in header])
    for cells in trailer or []:
        writer.writerow(cells)
    data = buffer.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


def adyen_row(
    type_: str,
    *,
    psp: str,
    merchant_reference: str = "",
    currency: str = "EUR",
    gross_credit: str = "",
    gross_debit: str = "",
    net_credit: str = "",
    net_debit: str = "",
    commission: str = "",
    markup: str = "",
    scheme_fees: str = "",
    interchange: str = "",
    modification: str = "",
    created: str = "2026-11-20 10:00:00",
    timezone: str = "UTC",
    batch: str = "101",
) -> dict:
    return {
        "Company Account": "CasinoCompany",
        "Merchant Account": "CasinoEU",
        "Psp Reference": psp,
        "Merchant Reference": merchant_reference,
        "Payment Method": "visa",
        "Creation Date": created,
        "TimeZone": timezone,
        "Type": type_,
        "Modification Reference": modification,
        "Gross Currency": currency,
        "Gross Debit (GC)": gross_debit,
        "Gross Credit (GC)": gross_credit,
        "Exchange Rate": "1",
        "Net Currency": currency,
        "Net Debit (NC)": net_debit,
        "Net Credit (NC)": net_credit,
        "Commission (NC)": commission,
        "Markup (NC)": markup,
        "Scheme Fees (NC)": scheme_fees,
        "Interchange (NC)": interchange,
        "Payment Method Variant": "visacredit",
        "Batch Number": batch,
    }


def stripe_row(
    category: str,
    *,
    txn: str,
    source: str,
    gross: str,
    fee: str = "0.00",
    net: str | None = None,
    currency: str = "eur",
    payment_intent: str = "",
    payout: str = "po_1",
    created: str = "2026-11-20 10:00:00",
    reference: str = "",
) -> dict:
    return {
        "automatic_payout_id": payout,
        "automatic_payout_effective_at": "2026-11-22 00:00:00",
        "balance_transaction_id": txn,
        "created_utc": created,
        "created": created,
        "available_on_utc": "2026-11-22 00:00:00",
        "available_on": "2026-11-22 00:00:00",
        "currency": currency,
        "gross": gross,
        "fee": fee,
        "net": net if net is not None else gross,
        "reporting_category": category,
        "source_id": source,
        "payment_intent_id": payment_intent,
        "payment_metadata[reference]": reference,
    }


def sandbox_row(
    record_type: str,
    *,
    provider: str,
    reference: str,
    gross: str,
    fee: str = "0.00",
    net: str | None = None,
    currency: str = "EUR",
    payment_reference: str = "",
    merchant_reference: str = "",
    booked_at: str = "2026-11-20T10:00:00+00:00",
    batch: str = "B1",
) -> dict:
    return {
        "provider": provider,
        "record_type": record_type,
        "provider_reference": reference,
        "payment_reference": payment_reference,
        "merchant_reference": merchant_reference,
        "currency": currency,
        "gross": gross,
        "fee": fee,
        "net": net if net is not None else gross,
        "booked_at": booked_at,
        "batch": batch,
    }
