"""The settlement report layouts we read, each mapped to one normalized line (SettlementLine).

A layout is read by header name, never by position: providers reorder columns and add new
ones. Each layout turns the raw text columns of a file (loaded as-is by COPY into a temporary
table `c1 … cN`) into SQL expressions for the normalized fields, so the whole file is parsed,
checked and converted by PostgreSQL in a few set-based statements.

Normalized signs are the merchant's: money the provider owes us is positive, money that
left us is negative; `fee` is what the provider kept (positive is a cost); `net = gross - fee`.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .models import SettlementImport, SettlementLine

RT = SettlementLine.RecordType

# A finite number as COPY reads one into a numeric column (the fast path's judge), so both
# paths accept the same files: 12, -12.50, +1.5, .5 and 1e3 pass; 1,000.00 and NaN do not.
DECIMAL_PATTERN = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"
# Checked before any cast, so a bad value is reported with its line instead of aborting the
# statement. Feb 30 passes this and is caught by the cast (reported without a line number).
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)


@dataclass(frozen=True)
class NumberFormat:
    """How a report writes amounts: its decimal separator and thousands separator (none by
    default). The default format is parsed by COPY itself; any other is read as text,
    checked against `pattern` (digits grouped by three when a thousands separator is used)
    and rewritten to PostgreSQL's form by `normalize`."""

    decimal: str = "."
    thousands: str = ""

    @property
    def is_default(self) -> bool:
        return self.decimal == "." and not self.thousands

    def _groupings(self) -> list[str]:
        # A space separator also stands for the no-break spaces spreadsheets write.
        if self.thousands == " ":
            return [" ", "\u00a0", "\u202f"]
        return [self.thousands] if self.thousands else []

    @property
    def pattern(self) -> str:
        """A finite number in this format (the format's counterpart of DECIMAL_PATTERN)."""
        if self.is_default:
            return DECIMAL_PATTERN
        decimal = re.escape(self.decimal)
        integer = "[0-9]+"
        if self.thousands:
            group = "[" + "".join(re.escape(g) for g in self._groupings()) + "]"
            integer = f"([0-9]{{1,3}}({group}[0-9]{{3}})+|[0-9]+)"
        return f"^[-+]?({integer}({decimal}[0-9]*)?|{decimal}[0-9]+)$"

    def normalize(self, text: str) -> str:
        """SQL: the text of an amount (`text`) in PostgreSQL's numeric form."""
        for group in self._groupings():
            text = f"replace({text}, {sql_literal(group)}, '')"
        if self.decimal != ".":
            text = f"replace({text}, {sql_literal(self.decimal)}, '.')"
        return text


DEFAULT_NUMBERS = NumberFormat()


class Columns:
    """Column references by header name for one file's header line.

    Inline (the default), each reference is the expression over the raw text column itself.
    `staged=True` is for the one statement every line of a good file pays for: a reference
    names a column of an inner subquery (`staged_columns`) that trims, lower-cases or casts
    each raw column once per line, however many normalized fields read it.
    """

    def __init__(
        self,
        header: list[str],
        *,
        staged: bool = False,
        numeric: frozenset[int] = frozenset(),
        numbers: NumberFormat = DEFAULT_NUMBERS,
    ):
        self.numbers = numbers
        self.index = {}
        for position, name in enumerate(header, start=1):
            self.index.setdefault(normalize_header(name), position)
        self.staged = staged
        # Positions COPY already parsed into numeric columns (blank is NULL there).
        self.numeric = numeric
        self.used: dict[str, str] = {}

    def position(self, name: str) -> int | None:
        return self.index.get(normalize_header(name))

    def has(self, name: str) -> bool:
        return normalize_header(name) in self.index

    def _ref(self, prefix: str, position: int, expression: str) -> str:
        if not self.staged:
            return expression
        alias = f"{prefix}{position}"
        self.used[alias] = expression
        return alias

    def raw(self, name: str) -> str:
        """The trimmed text of a column, NULL when blank or when the file lacks the column
        (a column COPY parsed as numeric: its value)."""
        position = self.position(name)
        if position is None:
            return "NULL::text"
        if position in self.numeric:
            return self._ref("n", position, f"c{position}")
        return self._ref("t", position, f"nullif(btrim(c{position}), '')")

    def lower(self, name: str) -> str:
        """The trimmed text of a column in lower case (type names are matched that way)."""
        position = self.position(name)
        if position is None:
            return "NULL::text"
        return self._ref("l", position, f"lower(nullif(btrim(c{position}), ''))")

    def amount(self, name: str) -> str:
        """A decimal column; blank counts as zero (Adyen leaves unused debit/credit blank)."""
        position = self.position(name)
        if position is None:
            return "0::numeric"
        if position in self.numeric:
            return self._ref("a", position, f"coalesce(c{position}, 0)")
        return self._ref("a", position, f"coalesce({self.amount_text(name)}::numeric, 0)")

    def amount_text(self, name: str) -> str:
        """A decimal column's text in PostgreSQL's numeric form (NULL when blank)."""
        position = self.position(name)
        if position is None:
            return "NULL::text"
        return self.numbers.normalize(f"nullif(btrim(c{position}), '')")

    def first(self, *names: str) -> str:
        """The first of several alternative column names the file has (e.g. created_utc or
        created); NULL if none."""
        for name in names:
            if self.has(name):
                return self.raw(name)
        return "NULL::text"

    def staged_columns(self) -> str:
        """The select list of the inner subquery the staged references name (call it after
        building every expression that uses them)."""
        return ", ".join(f"{expression} AS {alias}" for alias, expression in self.used.items())


def normalize_header(name: str) -> str:
    return " ".join(name.replace("\ufeff", "").strip().lower().split())


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def case_map(lowered: str, mapping: dict[str, str], default: str) -> str:
    """CASE lowered WHEN 'a' THEN 'x' … ELSE default END; `lowered` is already lower case."""
    whens = " ".join(
        f"WHEN {sql_literal(source.lower())} THEN {sql_literal(target)}"
        for source, target in mapping.items()
    )
    return f"(CASE {lowered} {whens} ELSE {sql_literal(default)} END)"


@dataclass(frozen=True)
class Layout:
    code: str
    required: tuple[str, ...]
    # Columns that must parse as decimals when not blank, each with the column naming its
    # currency (whose exponent bounds the decimals).
    decimal_columns: tuple[tuple[str, str], ...]
    # Columns that may not be blank on any line.
    non_blank: tuple[str, ...]
    # Alternative names of the booking-time column, first present wins.
    booked_columns: tuple[str, ...]
    expressions: Callable[[Columns], dict[str, str]]
    # Columns holding time zone names, checked against PostgreSQL's list.
    timezone_columns: tuple[str, ...] = field(default=())
    # A column that must equal the import's provider code on every line.
    provider_column: str | None = None
    # A column naming the provider-side account each line belongs to; checked against the
    # provider's configured merchant accounts (ProviderPolicy.merchant_accounts).
    merchant_account_column: str | None = None
    # The report itemizes payouts without a line for the payout itself (each batch is one
    # payout of its lines' net): the loader derives the payout line, booked at the first of
    # `payout_time_columns` the file has (else at the batch's last line).
    # Trailing totals or summary lines (after the last record) are recognised and skipped:
    # a line whose columns named here are all blank, or one with a cell that reads as a
    # total ("Total", "Subtotal", "Grand total", "Summary", …).
    summary_blank_columns: tuple[str, ...] = ()
    payout_per_batch: bool = False
    payout_id_column: str = ""
    payout_time_columns: tuple[str, ...] = ()


# --- Adyen settlement details report -------------------------------------------------------

ADYEN_TYPES = {
    "Settled": RT.PAYMENT,
    "SettledBulk": RT.PAYMENT,
    "Refunded": RT.REFUND,
    "RefundedBulk": RT.REFUND,
    "Chargeback": RT.CHARGEBACK,
    "SecondChargeback": RT.CHARGEBACK,
    "ChargebackReversed": RT.CHARGEBACK_REVERSAL,
    "PaidOut": RT.PLAYER_PAYOUT,
    "Fee": RT.FEE,
    "InvoiceDeduction": RT.FEE,
    "MiscCosts": RT.FEE,
    "PaymentCost": RT.FEE,
    "MerchantPayout": RT.MERCHANT_PAYOUT,
}


def types_of(mapping: dict[str, str], *record_types: str) -> str:
    """The provider's type names (lower case, as SQL literals) that map to `record_types`."""
    return ", ".join(
        sql_literal(name.lower()) for name, target in mapping.items() if target in record_types
    )


def _adyen(c: Columns) -> dict[str, str]:
    provider_type = c.lower("Type")
    record_type = case_map(provider_type, ADYEN_TYPES, RT.OTHER)
    net = f"({c.amount('Net Credit (NC)')} - {c.amount('Net Debit (NC)')})"
    gross = f"({c.amount('Gross Credit (GC)')} - {c.amount('Gross Debit (GC)')})"
    # Interchange++ merchants see markup, scheme fees and interchange; blended ones only
    # commission. Either way the provider kept their sum.
    fee = (
        f"({c.amount('Commission (NC)')} + {c.amount('Markup (NC)')} + "
        f"{c.amount('Scheme Fees (NC)')} + {c.amount('Interchange (NC)')})"
    )
    # Tested on the raw type, not on `record_type`: each use of that CASE would evaluate it
    # again, on every line.
    is_fee = f"{provider_type} IN ({types_of(ADYEN_TYPES, RT.FEE)})"
    is_payout = f"{provider_type} IN ({types_of(ADYEN_TYPES, RT.MERCHANT_PAYOUT)})"
    is_own_reference = f"{provider_type} IN ({types_of(ADYEN_TYPES, RT.PAYMENT, RT.PLAYER_PAYOUT)})"
    psp = c.raw("Psp Reference")
    modification = c.raw("Modification Reference")
    gross_currency = c.raw("Gross Currency")
    net_currency = c.raw("Net Currency")
    timezone = c.raw("TimeZone") if c.has("TimeZone") else "'UTC'"
    return {
        "provider_type": c.raw("Type"),
        "record_type": record_type,
        # Refunds and chargebacks carry the original payment's PSP reference; their own
        # reference is the modification reference. Payments and payouts to players are
        # known by their own PSP reference.
        "provider_reference": (
            f"coalesce(CASE WHEN {is_own_reference} THEN {psp} END, {modification}, {psp}, '')"
        ),
        "payment_reference": f"coalesce({psp}, '')",
        "merchant_reference": f"coalesce({c.raw('Merchant Reference')}, '')",
        # A fee or payout record has no gross: the whole net is the fee or the payout.
        "gross": f"(CASE WHEN {is_fee} THEN 0 WHEN {is_payout} THEN {net} ELSE {gross} END)",
        "fee": f"(CASE WHEN {is_fee} THEN -{net} WHEN {is_payout} THEN 0 ELSE {fee} END)",
        "net": net,
        "currency": f"upper(coalesce({gross_currency}, {net_currency}))",
        "net_currency": f"upper(coalesce({net_currency}, {gross_currency}))",
        "booked_at": (
            f"({c.raw('Creation Date')}::timestamp AT TIME ZONE coalesce({timezone}, 'UTC'))"
        ),
        "batch": f"coalesce({c.raw('Batch Number')}, '')",
    }


ADYEN = Layout(
    code=SettlementImport.Layout.ADYEN,
    required=(
        "Psp Reference",
        "Merchant Reference",
        "Creation Date",
        "Type",
        "Gross Currency",
        "Gross Debit (GC)",
        "Gross Credit (GC)",
        "Net Currency",
        "Net Debit (NC)",
        "Net Credit (NC)",
        "Batch Number",
    ),
    decimal_columns=(
        ("Gross Debit (GC)", "Gross Currency"),
        ("Gross Credit (GC)", "Gross Currency"),
        ("Net Debit (NC)", "Net Currency"),
        ("Net Credit (NC)", "Net Currency"),
        ("Commission (NC)", "Net Currency"),
        ("Markup (NC)", "Net Currency"),
        ("Scheme Fees (NC)", "Net Currency"),
        ("Interchange (NC)", "Net Currency"),
    ),
    non_blank=("Type", "Creation Date", "Net Currency"),
    booked_columns=("Creation Date",),
    timezone_columns=("TimeZone",),
    expressions=_adyen,
    merchant_account_column="Merchant Account",
    # Every record has a type and a reference of Adyen's; a totals line has neither.
    summary_blank_columns=("Type", "Psp Reference", "Modification Reference"),
)


# --- Stripe itemized payout reconciliation report -----------------------------------------

STRIPE_CATEGORIES = {
    "charge": RT.PAYMENT,
    "refund": RT.REFUND,
    "dispute": RT.CHARGEBACK,
    "dispute_reversal": RT.CHARGEBACK_REVERSAL,
    "fee": RT.FEE,
    "payout": RT.MERCHANT_PAYOUT,
}


def _stripe(c: Columns) -> dict[str, str]:
    category = c.lower("reporting_category")
    record_type = case_map(category, STRIPE_CATEGORIES, RT.OTHER)
    is_fee = f"{category} IN ({types_of(STRIPE_CATEGORIES, RT.FEE)})"
    is_payment = f"{category} IN ({types_of(STRIPE_CATEGORIES, RT.PAYMENT)})"
    gross, fee, net = c.amount("gross"), c.amount("fee"), c.amount("net")
    payment_intent = c.raw("payment_intent_id")
    source = c.raw("source_id")
    created = c.first("created_utc", "created")
    return {
        "provider_type": c.raw("reporting_category"),
        "record_type": record_type,
        # Our deposits know the payment intent; refunds and disputes are their own objects.
        "provider_reference": (
            f"coalesce(CASE WHEN {is_payment} THEN {payment_intent} END, {source}, "
            f"{c.raw('balance_transaction_id')}, '')"
        ),
        "payment_reference": f"coalesce({payment_intent}, {c.first('charge_id')}, '')",
        "merchant_reference": f"coalesce({c.first('payment_metadata[reference]')}, '')",
        # Stripe books a fee line's amount as gross; here it is a fee like any other.
        "gross": f"(CASE WHEN {is_fee} THEN 0 ELSE {gross} END)",
        "fee": f"(CASE WHEN {is_fee} THEN -{net} ELSE {fee} END)",
        "net": net,
        "currency": f"upper({c.raw('currency')})",
        "net_currency": f"upper({c.raw('currency')})",
        # Stripe's report times are UTC.
        "booked_at": f"({created}::timestamp AT TIME ZONE 'UTC')",
        "batch": f"coalesce({c.raw('automatic_payout_id')}, '')",
    }


STRIPE = Layout(
    code=SettlementImport.Layout.STRIPE,
    required=(
        "balance_transaction_id",
        "currency",
        "gross",
        "fee",
        "net",
        "reporting_category",
        "source_id",
        "automatic_payout_id",
    ),
    decimal_columns=(("gross", "currency"), ("fee", "currency"), ("net", "currency")),
    non_blank=("balance_transaction_id", "currency", "reporting_category", "gross", "net"),
    booked_columns=("created_utc", "created"),
    expressions=_stripe,
    summary_blank_columns=("balance_transaction_id", "reporting_category"),
    # Each automatic_payout_id is one payout to the bank, listed only through the balance
    # transactions it settles.
    payout_per_batch=True,
    payout_id_column="automatic_payout_id",
    payout_time_columns=("automatic_payout_effective_at_utc", "automatic_payout_effective_at"),
)


# --- our sandbox providers' settlement file ------------------------------------------------

SANDBOX_COLUMNS = (
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
)


def _sandbox(c: Columns) -> dict[str, str]:
    known = {t.value: t.value for t in RT}
    return {
        "provider_type": c.raw("record_type"),
        "record_type": case_map(c.lower("record_type"), known, RT.OTHER),
        "provider_reference": f"coalesce({c.raw('provider_reference')}, '')",
        "payment_reference": f"coalesce({c.raw('payment_reference')}, '')",
        "merchant_reference": f"coalesce({c.raw('merchant_reference')}, '')",
        "gross": c.amount("gross"),
        "fee": c.amount("fee"),
        "net": c.amount("net"),
        "currency": f"upper({c.raw('currency')})",
        "net_currency": f"upper({c.raw('currency')})",
        # ISO 8601 with an offset; a bare time is UTC.
        "booked_at": f"({c.raw('booked_at')}::timestamptz)",
        "batch": f"coalesce({c.raw('batch')}, '')",
    }


SANDBOX = Layout(
    code=SettlementImport.Layout.SANDBOX,
    required=SANDBOX_COLUMNS,
    decimal_columns=(("gross", "currency"), ("fee", "currency"), ("net", "currency")),
    non_blank=("provider", "record_type", "currency", "gross", "fee", "net", "booked_at"),
    booked_columns=("booked_at",),
    expressions=_sandbox,
    provider_column="provider",
)

LAYOUTS = {layout.code: layout for layout in (ADYEN, STRIPE, SANDBOX)}


# A cell that is a total's label and nothing else ("Total", "Totals:", "Grand total",
# "Subtotal", "Summary").
_TOTAL_CELL = re.compile(r"^((grand\s+|sub-?)?totals?|summary)\s*:?$", re.IGNORECASE)


def is_summary_line(layout: Layout, header: list[str], cells: list[str]) -> bool:
    """A line at the end of a report that totals it instead of being a record: blank, or its
    record-identifying columns (`summary_blank_columns`) are blank or hold a total's label.
    A record always fills them, so no record is ever taken for a total."""
    if not any(cell.strip() for cell in cells):
        return True
    if not layout.summary_blank_columns:
        return False
    by_name = {normalize_header(name): cell for name, cell in zip(header, cells, strict=False)}
    markers = [by_name.get(normalize_header(n), "").strip() for n in layout.summary_blank_columns]
    return all(not value or _TOTAL_CELL.match(value) for value in markers)
