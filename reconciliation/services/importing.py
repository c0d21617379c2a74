"""Settlement report import: store the file, then load it set-based through PostgreSQL COPY.

Loading never runs Python per line. The file streams into a temporary table of text columns
(COPY, CSV mode: quoting, CRLF and embedded separators are PostgreSQL's job); one scan finds
every malformed value with its line number; one INSERT … SELECT converts the lines to the
normalized form and skips lines an earlier import already holds. All of it is one
transaction: a refused file leaves no line behind.
"""

import codecs
import csv
import hashlib
import io
import re
from dataclasses import dataclass

import psycopg2
from django.core.files import File
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from wallets.models import Currency

from ..errors import MalformedReport, ReportNotLoadable
from ..layouts import (
    DEFAULT_NUMBERS,
    LAYOUTS,
    TIMESTAMP_PATTERN,
    Columns,
    Layout,
    NumberFormat,
    is_summary_line,
    sql_literal,
)
from ..models import (
    DirtyLineDay,
    ProviderPolicy,
    ReportFormat,
    SettlementImport,
    SettlementLine,
)
from ..progress import Progress

MAX_REPORTED_ERRORS = 100
RAW_TABLE = "recon_raw_report"
_CHUNK = 1 << 20
_BOM = codecs.BOM_UTF8
_REFERENCE_LENGTH = 128


def receive_report(
    *, layout: str, provider_code: str, file_name: str, content, uploaded_by=None
) -> tuple[SettlementImport, bool]:
    """Store a report for loading; return (import, created).

    A report is identified by its provider, its layout and its bytes (sha256): the same file
    again for the same provider and layout is the same report, and the earlier import is
    returned with nothing new stored, so it can never count twice. A refused import does not
    hold its file: once the cause is fixed (the layout chosen, the policy or a currency set
    up) the same bytes are received again and loaded. The same bytes under another provider
    or layout are another import (loading refuses it if its merchant account column names an
    account that is not this provider's). `content` is bytes or a binary file object.
    """
    if layout not in LAYOUTS:
        raise MalformedReport(f"Unknown layout {layout!r}.", layout=layout)
    if not provider_code:
        raise MalformedReport("A settlement report belongs to a provider.")
    stream = io.BytesIO(content) if isinstance(content, bytes | bytearray) else content
    digest, size = hashlib.sha256(), 0
    stream.seek(0)
    for chunk in iter(lambda: stream.read(_CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
    checksum = digest.hexdigest()
    held = SettlementImport.objects.filter(
        provider_code=provider_code, layout=layout, checksum=checksum
    ).exclude(status=SettlementImport.Status.REJECTED)
    existing = held.first()
    if existing is not None:
        return existing, False
    stream.seek(0)
    try:
        with transaction.atomic():
            report = SettlementImport(
                layout=layout,
                provider_code=provider_code,
                file_name=file_name[:255],
                checksum=checksum,
                size=size,
                uploaded_by=uploaded_by,
            )
            report.file.save(file_name, File(stream, name=file_name), save=False)
            report.save()
    except IntegrityError:
        # Two uploads of one file raced; the other one won.
        return held.get(), False
    return report, True


def load_report(*, settlement_import: SettlementImport) -> SettlementImport:
    """Parse, check and load a received report into SettlementLine.

    Either every line is loaded (lines already held from an earlier import are skipped and
    counted) or none is: a malformed report is marked rejected with its line-numbered errors
    and MalformedReport is raised.
    """
    report = settlement_import
    claimed = SettlementImport.objects.filter(
        pk=report.pk, status__in=[SettlementImport.Status.RECEIVED, SettlementImport.Status.LOADING]
    ).update(status=SettlementImport.Status.LOADING)
    if not claimed:
        report.refresh_from_db()
        raise ReportNotLoadable(
            f"Report {report.pk} is {report.status}.", status=report.status, import_id=report.pk
        )
    layout = LAYOUTS[report.layout]
    with Progress(SettlementImport, report.pk) as progress:
        try:
            with transaction.atomic():
                # One loader per report: a duplicate task waits here, then finds it loaded.
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [0x5E77, report.pk])
                    # Loads of one provider queue: deriving a batch's payout reads what other
                    # imports hold of that batch, and two loads must not both derive it.
                    cursor.execute(
                        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                        [0x5E7A, report.provider_code],
                    )
                report.refresh_from_db()
                if report.status != SettlementImport.Status.LOADING:
                    return report
                inserted, total, payouts = _load(report, layout, progress)
        except MalformedReport as refused:
            SettlementImport.objects.filter(pk=report.pk).update(
                status=SettlementImport.Status.REJECTED,
                errors=refused.details.get("errors", []),
            )
            report.refresh_from_db()
            raise
    SettlementImport.objects.filter(pk=report.pk).update(
        status=SettlementImport.Status.LOADED,
        rows_total=total,
        rows_processed=total,
        lines_loaded=inserted,
        lines_already_known=total - inserted,
        payouts_derived=payouts,
        loaded_at=timezone.now(),
    )
    report.refresh_from_db()
    return report


def _refuse(errors: list[dict]) -> MalformedReport:
    first = errors[0]
    where = f"line {first['line']}" if first.get("line") else "the file"
    return MalformedReport(
        f"The report was refused ({len(errors)} error(s)); first, at {where}: {first['message']}",
        errors=errors,
    )


@dataclass(frozen=True)
class ParsingPolicy:
    """How one provider writes one layout's files (`ReportFormat`; the default without a
    row): delimiter, number format and encoding."""

    delimiter: str = ","
    numbers: NumberFormat = DEFAULT_NUMBERS
    encoding: str = "utf-8"

    # PostgreSQL's names of the encodings a ReportFormat may name.
    PG_ENCODINGS = {
        "utf-8": "UTF8",
        "windows-1252": "WIN1252",
        "iso-8859-1": "LATIN1",
        "iso-8859-15": "LATIN9",
    }

    @classmethod
    def of(cls, provider_code: str, layout: str) -> "ParsingPolicy":
        stored = ReportFormat.objects.filter(provider_code=provider_code, layout=layout).first()
        if stored is None:
            return cls()
        return cls(
            delimiter=stored.delimiter,
            numbers=NumberFormat(stored.decimal_separator, stored.thousands_separator),
            encoding=stored.encoding,
        )

    @property
    def pg_encoding(self) -> str:
        return self.PG_ENCODINGS[self.encoding]

    @property
    def is_utf8(self) -> bool:
        return self.encoding == "utf-8"


_DELIMITER_NAMES = {",": "comma (,)", ";": "semicolon (;)", "\t": "tab", "|": "pipe (|)"}


@dataclass(frozen=True)
class _Shape:
    """What the loader learns of a file before COPY: its header, where its records end
    (trailing summary lines excluded) and how many lines it has."""

    header: list[str]
    body_end: int
    line_count: int
    summary_lines: int


class _CountingReader(io.RawIOBase):
    """Feeds the file to COPY up to `limit` bytes (trailing summary lines are not fed),
    skipping a UTF-8 byte order mark and reporting progress."""

    def __init__(self, stream, progress: Progress, total: int, *, limit: int, skip_bom: bool):
        self.stream = stream
        self.progress = progress
        self.total = total
        self.lines = 0
        self.at_start = skip_bom
        self.remaining = limit

    def readable(self):
        return True

    def read(self, size=-1):
        wanted = min(_CHUNK if size is None or size < 0 else size, self.remaining)
        if wanted <= 0:
            return b""
        chunk = self.stream.read(wanted)
        self.remaining -= len(chunk)
        if self.at_start:
            self.at_start = False
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        self.lines += chunk.count(b"\n")
        if self.progress.reports_aside:
            self.progress.update(rows_processed=min(self.lines, self.total))
        return chunk


# How far from its end a file is searched for trailing summary lines.
_TAIL = 64 * 1024
_MAX_SUMMARY_LINES = 100


def _shape(stream, layout: Layout, policy: ParsingPolicy) -> _Shape:
    stream.seek(0)
    first = stream.readline()
    try:
        text = first.decode("utf-8-sig" if policy.is_utf8 else policy.encoding)
    except UnicodeDecodeError:
        message = f"the file is not {policy.encoding}"
        raise _refuse([{"line": 1, "column": "", "message": message}]) from None
    header = next(csv.reader([text], delimiter=policy.delimiter), [])
    size = stream.seek(0, io.SEEK_END)
    body_end, summary_lines = _body_end(stream, size, len(first), layout, policy, header)
    stream.seek(0)
    lines, remaining, last = 0, body_end, b"\n"
    while remaining > 0:
        chunk = stream.read(min(_CHUNK, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        lines += chunk.count(b"\n")
        last = chunk[-1:]
    if last != b"\n":
        lines += 1
    # Progress counts report lines, not the header.
    return _Shape(header, body_end, max(lines - 1, 0), summary_lines)


def _body_end(
    stream, size: int, header_end: int, layout: Layout, policy: ParsingPolicy, header
) -> tuple[int, int]:
    """Where the file's records end: before its trailing blank and summary lines (the
    layout's `is_summary_line`). Only the file's tail is read."""
    start = max(header_end, size - _TAIL)
    stream.seek(start)
    tail = stream.read()
    # Offsets (in the file) of each line of the tail; the first is partial unless the tail
    # starts right after the header.
    pieces, offset = [], start
    for piece in tail.split(b"\n"):
        pieces.append((offset, piece))
        offset += len(piece) + 1
    if pieces and not pieces[-1][1]:
        pieces.pop()  # after the final newline
    complete = pieces if start == header_end else pieces[1:]
    body_end, summary_lines = size, 0
    for line_start, piece in reversed(complete):
        raw = piece.rstrip(b"\r")
        if raw.count(b'"') % 2:
            break  # part of a quoted value spanning lines: a record, not a total
        text = raw.decode(policy.encoding, errors="replace")
        cells = next(csv.reader([text], delimiter=policy.delimiter), [])
        if not is_summary_line(layout, header, cells):
            break
        body_end = line_start
        summary_lines += any(cell.strip() for cell in cells)
        if summary_lines > _MAX_SUMMARY_LINES:
            return size, 0
    return body_end, summary_lines


def _wrong_delimiter(stream, layout: Layout, policy: ParsingPolicy, header, provider_code):
    """When required columns are missing: the delimiter the file seems to use instead of the
    configured one (csv.Sniffer, checked against the header), as a refusal that names it."""
    stream.seek(0)
    sample = stream.read(_TAIL).decode(policy.encoding, errors="replace").lstrip("\ufeff")
    candidates = "".join(d for d in _DELIMITER_NAMES if d != policy.delimiter)
    try:
        guess = csv.Sniffer().sniff(sample, delimiters=candidates).delimiter
    except csv.Error:
        counts = {d: sample.splitlines()[0].count(d) if sample else 0 for d in candidates}
        guess = max(counts, key=counts.get) if any(counts.values()) else None
    if guess is None or guess == policy.delimiter:
        return None
    guessed_header = next(csv.reader([sample.splitlines()[0]], delimiter=guess), [])
    found = Columns(guessed_header)
    configured = Columns(header)
    if sum(map(found.has, layout.required)) <= sum(map(configured.has, layout.required)):
        return None
    return _refuse(
        [
            {
                "line": 1,
                "column": "",
                "message": (
                    f"the file seems delimited by {_DELIMITER_NAMES[guess]}, not by "
                    f"{_DELIMITER_NAMES.get(policy.delimiter, repr(policy.delimiter))} as "
                    f"{provider_code}'s {layout.code} reports are configured: set the "
                    f"delimiter of its report format to {_DELIMITER_NAMES[guess]}"
                ),
            }
        ]
    )


def _load(report: SettlementImport, layout: Layout, progress: Progress) -> tuple[int, int, int]:
    """The fast path a good file takes: COPY parses the amounts, one INSERT converts and
    checks every line. Anything wrong sends the file down the slow path, which loads it as
    text and finds every bad value with its line number. Returns (lines inserted, lines in
    the file, payouts derived)."""
    policy = ParsingPolicy.of(report.provider_code, report.layout)
    with report.file.open("rb") as stream:
        shape = _shape(stream, layout, policy)
        header, line_count = shape.header, shape.line_count
        columns = Columns(header)
        missing = [name for name in layout.required if not columns.has(name)]
        if missing:
            wrong_delimiter = _wrong_delimiter(stream, layout, policy, header, report.provider_code)
            if wrong_delimiter:
                raise wrong_delimiter
            raise _refuse(
                [
                    {"line": 1, "column": name, "message": f"required column {name!r} is missing"}
                    for name in missing
                ]
            )
        if not any(columns.has(name) for name in layout.booked_columns):
            names = " or ".join(repr(n) for n in layout.booked_columns)
            raise _refuse([{"line": 1, "column": "", "message": f"no {names} column"}])
        progress.update(force=True, rows_total=line_count, rows_processed=0)
        # COPY parses amounts in PostgreSQL's own format (the normal case, and the fast one);
        # other formats are read as text and rewritten by the insert.
        numeric = (
            frozenset(
                columns.position(name) for name, _ in layout.decimal_columns if columns.has(name)
            )
            if policy.numbers.is_default
            else frozenset()
        )
        stream.seek(0)
        try:
            total = _copy(stream, len(header), numeric, progress, shape, policy)
        except psycopg2.DataError:
            # A value COPY could not parse (an amount that is not a number, say).
            return _refuse_with_every_error(report, layout, shape, policy, progress)
    if total == 0:
        raise _refuse([{"line": 2, "column": "", "message": "the report has no lines"}])
    # Every line this load writes gets a higher id (loads of one provider queue on its lock).
    before = _highest_line_id()
    try:
        inserted = _insert_lines(
            report,
            Columns(header, staged=True, numeric=numeric, numbers=policy.numbers),
            layout,
        )
    except DataError as error:
        diag = getattr(error.__cause__, "diag", None)
        cast_error = (diag.message_primary if diag else None) or str(error)
        return _refuse_with_every_error(report, layout, shape, policy, progress, cast_error)
    payouts = _derive_batch_payouts(
        report, layout, Columns(header, numeric=numeric, numbers=policy.numbers)
    )
    _mark_days_dirty(report.provider_code, before)
    progress.update(force=True, rows_total=total, rows_processed=total)
    SettlementImport.objects.filter(pk=report.pk).update(summary_lines_skipped=shape.summary_lines)
    return inserted, total, payouts


def _highest_line_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {SettlementLine._meta.db_table}")
        return cursor.fetchone()[0]


def _mark_days_dirty(provider_code: str, after_id: int) -> None:
    """Mark the days this load's lines (ids above `after_id`, derived payouts included) fall
    on, for the integrity job to re-sum (`DailyLineTotal`); in the load's transaction, so a
    refused load marks nothing."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {DirtyLineDay._meta.db_table} (provider_code, day) "
            "SELECT DISTINCT %(provider)s, (booked_at AT TIME ZONE 'UTC')::date "
            f"FROM {SettlementLine._meta.db_table} WHERE id > %(after)s "
            "AND provider_code = %(provider)s ON CONFLICT DO NOTHING",
            {"provider": provider_code, "after": after_id},
        )


DERIVED_PAYOUT_TYPE = "automatic_payout"


def _derive_batch_payouts(report: SettlementImport, layout: Layout, columns: Columns) -> int:
    """For a layout that itemizes payouts without a payout line (Stripe's itemized payout
    reconciliation): one `merchant_payout` line per batch (payout id) and currency this report
    holds, paying out the net of every line of the batch (from any import), unless the batch
    has a payout line already. Inside the load's transaction, with the raw file still in
    RAW_TABLE; returns how many were derived.

    The payout is what the provider says it paid to our bank: settlement books it to
    `operator_bank` and the integrity check counts it as money that left the provider. A line
    of the batch arriving after its payout makes the payout differ from its batch, which
    matching reports as an amount mismatch instead of paying it out twice."""
    if not layout.payout_per_batch:
        return 0
    table = SettlementLine._meta.db_table
    time_column = next((n for n in layout.payout_time_columns if columns.has(n)), None)
    batch_raw = columns.raw(layout.payout_id_column)
    # The payout's own time when the file states it, else the time of its last line.
    stated = "NULL::timestamptz"
    if time_column:
        raw_time = columns.raw(time_column)
        stated = (
            f"(SELECT max(({raw_time})::timestamp AT TIME ZONE 'UTC') FROM {RAW_TABLE} "
            f"WHERE {batch_raw} = s.batch AND {raw_time} ~ {sql_literal(TIMESTAMP_PATTERN)})"
        )
    sql = (
        f"INSERT INTO {table} (settlement_import_id, provider_code, line_number, record_type, "
        "provider_type, provider_reference, payment_reference, merchant_reference, gross, fee, "
        "net, currency, net_currency, booked_at, batch, line_hash) "
        "SELECT %(import)s, %(provider)s, 0, record_type, provider_type, provider_reference, "
        "payment_reference, merchant_reference, gross, fee, net, currency, net_currency, "
        f"booked_at, batch, {FINGERPRINT} FROM ("
        f"SELECT '{SettlementLine.RecordType.MERCHANT_PAYOUT}'::text AS record_type, "
        f"'{DERIVED_PAYOUT_TYPE}'::text AS provider_type, s.batch AS provider_reference, "
        "''::text AS payment_reference, ''::text AS merchant_reference, "
        "-sum(s.net) AS gross, 0::numeric AS fee, -sum(s.net) AS net, "
        "s.net_currency AS currency, s.net_currency, "
        f"coalesce({stated}, max(s.booked_at)) AS booked_at, s.batch "
        f"FROM {table} s WHERE s.provider_code = %(provider)s AND s.batch <> '' "
        f"AND s.record_type <> '{SettlementLine.RecordType.MERCHANT_PAYOUT}' "
        # This report's payouts, read from the file (lines carry no index by import).
        f"AND s.batch IN (SELECT DISTINCT {batch_raw} FROM {RAW_TABLE}) "
        f"AND NOT EXISTS (SELECT 1 FROM {table} p WHERE p.provider_code = s.provider_code "
        f"AND p.batch = s.batch AND p.net_currency = s.net_currency "
        f"AND p.record_type = '{SettlementLine.RecordType.MERCHANT_PAYOUT}') "
        "GROUP BY s.batch, s.net_currency HAVING sum(s.net) <> 0) payout "
        "ON CONFLICT (provider_code, booked_at, line_hash) DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"import": report.pk, "provider": report.provider_code})
        return cursor.rowcount


def _refuse_with_every_error(
    report: SettlementImport,
    layout: Layout,
    shape: _Shape,
    policy: ParsingPolicy,
    progress: Progress,
    cast_error: str = "",
):
    """The slow path, paid only by a file that is refused anyway: load it again as text and
    scan it for every bad value with its line number."""
    columns = Columns(shape.header, numbers=policy.numbers)
    with report.file.open("rb") as stream:
        stream.seek(0)
        _copy(stream, len(shape.header), frozenset(), progress, shape, policy)
    errors = _timezone_errors(columns, layout) + _syntax_errors(
        columns, layout, report.provider_code, MerchantAccounts.of(report.provider_code)
    )
    if not errors:
        # A value that passed the patterns but not the cast (e.g. 2024-02-30).
        errors = [{"line": None, "column": "", "message": cast_error or "unreadable value"}]
    raise _refuse(errors[:MAX_REPORTED_ERRORS])


@dataclass(frozen=True)
class MerchantAccounts:
    """The merchant accounts a report of `provider_code` may name: its own (none configured:
    any but another provider's) and every other provider's, each with its provider."""

    provider_code: str
    own: tuple[str, ...]
    foreign: dict[str, str]

    @classmethod
    def of(cls, provider_code: str) -> "MerchantAccounts":
        own, foreign = (), {}
        for code, accounts in ProviderPolicy.objects.values_list(
            "provider_code", "merchant_accounts"
        ):
            names = tuple(str(name).strip() for name in accounts or () if str(name).strip())
            if code == provider_code:
                own = names
            else:
                foreign.update({name: code for name in names})
        # An account both providers claim is this one's: configuration says so.
        return cls(provider_code, own, {k: v for k, v in foreign.items() if k not in own})

    @property
    def is_checked(self) -> bool:
        return bool(self.own or self.foreign)

    def bad(self, value: str) -> str:
        """SQL: the line's merchant account (`value`, NULL when blank) is not this provider's."""
        tests = []
        if self.own:
            tests.append(f"{value} NOT IN ({', '.join(map(sql_literal, self.own))})")
        if self.foreign:
            tests.append(f"{value} IN ({', '.join(map(sql_literal, self.foreign))})")
        return f"({value} IS NOT NULL AND ({' OR '.join(tests) or 'false'}))"

    def message(self, value: str) -> str:
        """SQL: why `value` is refused, naming the provider it belongs to when we know it."""
        provider = sql_literal(self.provider_code)
        whose = (
            "CASE "
            + " ".join(
                f"WHEN {value} = {sql_literal(name)} THEN {sql_literal(code)}"
                for name, code in self.foreign.items()
            )
            + " END"
            if self.foreign
            else "NULL::text"
        )
        own = sql_literal(", ".join(self.own) or "none configured")
        return (
            f"CASE WHEN ({whose}) IS NOT NULL THEN "
            f"format('merchant account %s is provider %s''s, not %s''s', "
            f"quote_literal({value}), {whose}, {provider}) "
            f"ELSE format('merchant account %s is not one of %s''s (%s)', "
            f"quote_literal({value}), {provider}, {own}) END"
        )


def _suspicious_raw(
    columns: Columns, layout: Layout, provider_code: str, accounts: MerchantAccounts
) -> str:
    """The cheap test every line pays on its loaded columns, as one SQL condition (see
    `_suspicious_normalized` for the rest). COPY has parsed the amounts already (so 1e5 is
    accepted as 100000); malformed times fail their cast in the insert; either way the full
    line-by-line check then runs."""
    suspicious = [f"{columns.raw(name)} IS NULL" for name in layout.non_blank if columns.has(name)]
    booked = columns.raw(next(n for n in layout.booked_columns if columns.has(n)))
    # 'now', 'today' and 'epoch' are valid PostgreSQL times; a report's are digits.
    suspicious.append(f"{booked} IS NULL OR left({booked}, 1) NOT BETWEEN '0' AND '9'")
    if layout.provider_column:
        value = columns.raw(layout.provider_column)
        suspicious.append(f"{value} IS DISTINCT FROM {sql_literal(provider_code)}")
    account_column = layout.merchant_account_column
    if account_column and accounts.is_checked and columns.has(account_column):
        suspicious.append(accounts.bad(columns.raw(account_column)))
    if not columns.numbers.is_default:
        # Amounts read as text: a separator out of place ("1,2,3") must not pass as 123.
        pattern = sql_literal(columns.numbers.pattern)
        for name, _ in layout.decimal_columns:
            if columns.has(name):
                suspicious.append(f"NOT ({columns.raw(name)} ~ {pattern})")
    return " OR ".join(f"({c})" for c in suspicious)


def _suspicious_normalized() -> str:
    """The cheap test on a line's normalized values: a currency we keep, amounts that are
    numbers with no more decimals than it allows, references that fit."""
    exponents = _currency_exponents()
    # A currency we do not keep (or none) has exponent -1, which every scale (>= 0) exceeds:
    # one CASE per currency column tests both that the currency is known and the decimals.
    exponent_of = (
        "(CASE {} "
        + " ".join(f"WHEN {sql_literal(code)} THEN {exp}" for code, exp in exponents.items())
        + " ELSE -1 END)"
    )
    # NaN and Infinity are numbers to COPY; whatever they reach has no scale (NULL), so it
    # counts as too many decimals. (An amount the layout does not read is not checked.)
    checks = [
        f"coalesce(scale(gross), 99) > {exponent_of.format('currency')}",
        # greatest() skips NULLs: each side on its own.
        f"greatest(coalesce(scale(fee), 99), coalesce(scale(net), 99)) > "
        f"{exponent_of.format('net_currency')}",
        f"greatest(length(provider_reference), length(payment_reference), "
        f"length(merchant_reference), length(batch)) > {_REFERENCE_LENGTH}",
    ]
    return " OR ".join(f"({c})" for c in checks)


def _copy(
    stream,
    width: int,
    numeric: frozenset[int],
    progress: Progress,
    shape: _Shape,
    policy: ParsingPolicy,
) -> int:
    """COPY the file's records (up to `shape.body_end`) into RAW_TABLE, the columns at
    `numeric` parsed as numbers (blank is NULL, quoted or not), with the policy's delimiter
    and encoding; return the number of lines."""
    column_list = ", ".join(f"c{i}" for i in range(1, width + 1))
    definitions = ", ".join(
        f"c{i} {'numeric' if i in numeric else 'text'}" for i in range(1, width + 1)
    )
    with connection.cursor() as cursor:
        # ON COMMIT DROP cleans up after a loader; inside a caller's longer transaction an
        # earlier load's table may still be here, and the slow path loads the file again.
        cursor.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        # Line numbers start at 2: line 1 is the header. A quoted value spanning lines makes
        # them record numbers, which is what PostgreSQL's own messages count too.
        cursor.execute(
            f"CREATE TEMPORARY TABLE {RAW_TABLE} ("
            "line_no integer GENERATED ALWAYS AS IDENTITY (START WITH 2), "
            f"{definitions}) ON COMMIT DROP"
        )
        reader = _CountingReader(
            stream, progress, shape.line_count, limit=shape.body_end, skip_bom=policy.is_utf8
        )
        try:
            with transaction.atomic():
                cursor.cursor.copy_expert(
                    f"COPY {RAW_TABLE} ({column_list}) FROM STDIN WITH (FORMAT csv, "
                    f"HEADER true, DELIMITER {sql_literal(policy.delimiter)}, "
                    f"ENCODING '{policy.pg_encoding}', FORCE_NULL ({column_list}))",
                    reader,
                    size=_CHUNK,
                )
                return cursor.rowcount
        except psycopg2.errors.BadCopyFileFormat as error:
            raise _refuse([_copy_error(error, width)]) from None
        except psycopg2.DataError as error:
            if numeric:
                raise
            raise _refuse([_copy_error(error, width)]) from None


def _copy_error(error, width: int) -> dict:
    context = getattr(error.diag, "context", "") or ""
    found = re.search(r"line (\d+)", context)
    message = (error.diag.message_primary or str(error)).strip()
    if "extra data after last expected column" in message or "missing data for column" in message:
        message = f"expected {width} columns as in the header: {message}"
    return {"line": int(found.group(1)) if found else None, "column": "", "message": message}


def _currency_exponents() -> dict[str, int]:
    return dict(Currency.objects.values_list("code", "exponent"))


def _syntax_errors(
    columns: Columns, layout: Layout, provider_code: str, accounts: MerchantAccounts
) -> list[dict]:
    """Every bad value of the file in one scan: blanks, non-decimals, bad times, unknown
    currencies, too many decimals, over-long references, a line of another provider."""
    exponents = _currency_exponents()
    exponent_of = (
        "(CASE upper({}) "
        + " ".join(f"WHEN {sql_literal(code)} THEN {exp}" for code, exp in exponents.items())
        + " END)"
    )
    checks: list[tuple[str, str, str]] = []  # (column, condition meaning "bad", message SQL)
    for name in layout.non_blank:
        if columns.has(name):
            checks.append((name, f"{columns.raw(name)} IS NULL", "'is blank'"))
    for name, currency_column in layout.decimal_columns:
        if not columns.has(name):
            continue
        value = columns.raw(name)
        number = columns.amount_text(name)
        pattern = sql_literal(columns.numbers.pattern)
        checks.append(
            (
                name,
                f"NOT ({value} ~ {pattern})",
                f"format('%s is not a decimal amount', quote_literal({value}))",
            )
        )
        currency = columns.raw(currency_column)
        exponent = exponent_of.format(currency)
        checks.append(
            (
                name,
                f"({value} ~ {pattern}) AND scale(({number})::numeric) > coalesce({exponent}, 8)",
                f"format('%s has more decimals than %s allows', {value}, "
                f"coalesce(upper({currency}), 'its currency'))",
            )
        )
    booked = next(name for name in layout.booked_columns if columns.has(name))
    booked_value = columns.raw(booked)
    checks.append(
        (
            booked,
            f"{booked_value} IS NULL OR NOT ({booked_value} ~ {sql_literal(TIMESTAMP_PATTERN)})",
            f"format('%s is not a date and time', coalesce(quote_literal({booked_value}), "
            "'blank'))",
        )
    )
    expressions = layout.expressions(columns)
    known = "ARRAY[" + ", ".join(sql_literal(code) for code in exponents) + "]::text[]"
    for field_name in ("currency", "net_currency"):
        value = expressions[field_name]
        checks.append(
            (
                field_name,
                f"{value} IS NULL OR NOT ({value} = ANY({known}))",
                f"format('currency %s is not one we keep', coalesce(quote_literal({value}), "
                "'blank'))",
            )
        )
    for field_name in ("provider_reference", "payment_reference", "merchant_reference", "batch"):
        value = expressions[field_name]
        checks.append(
            (
                field_name,
                f"length({value}) > {_REFERENCE_LENGTH}",
                f"'is longer than {_REFERENCE_LENGTH} characters'",
            )
        )
    if layout.provider_column:
        value = columns.raw(layout.provider_column)
        checks.append(
            (
                layout.provider_column,
                f"{value} IS DISTINCT FROM {sql_literal(provider_code)}",
                f"format('%s is not this report''s provider %s', "
                f"coalesce(quote_literal({value}), 'blank'), {sql_literal(provider_code)})",
            )
        )
    account_column = layout.merchant_account_column
    if account_column and accounts.is_checked and columns.has(account_column):
        value = columns.raw(account_column)
        checks.append((account_column, accounts.bad(value), accounts.message(value)))
    problems = ", ".join(
        f"CASE WHEN {bad} THEN {sql_literal(column + ': ')} || {message} END"
        for column, bad, message in checks
    )
    sql = (
        f"SELECT line_no, problems FROM ("
        f"SELECT line_no, array_remove(ARRAY[{problems}], NULL) AS problems FROM {RAW_TABLE}"
        f") checked WHERE cardinality(problems) > 0 ORDER BY line_no LIMIT {MAX_REPORTED_ERRORS}"
    )
    errors = []
    with connection.cursor() as cursor:
        # No parameters: the statement's format() patterns hold literal percent signs.
        cursor.execute(sql)
        for line_no, line_problems in cursor.fetchall():
            for problem in line_problems:
                column, _, message = problem.partition(": ")
                errors.append({"line": line_no, "column": column, "message": message})
    return errors


def _timezone_errors(columns: Columns, layout: Layout) -> list[dict]:
    """Time zones are few per file: check each distinct one once against PostgreSQL's."""
    errors = []
    for name in layout.timezone_columns:
        if not columns.has(name):
            continue
        value = columns.raw(name)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {value} AS zone, min(line_no) FROM {RAW_TABLE} "
                f"WHERE {value} IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = "
                f"{value}) AND NOT EXISTS (SELECT 1 FROM pg_timezone_abbrevs WHERE "
                f"abbrev = upper({value})) GROUP BY 1 ORDER BY 2"
            )
            for zone, line_no in cursor.fetchall():
                errors.append(
                    {"line": line_no, "column": name, "message": f"unknown time zone {zone!r}"}
                )
    return errors


_NORMALIZED_FIELDS = (
    "record_type",
    "provider_type",
    "provider_reference",
    "payment_reference",
    "merchant_reference",
    "gross",
    "fee",
    "net",
    "currency",
    "net_currency",
    "booked_at",
    "batch",
)


# A line's fingerprint: what the provider says of it, hashed. With the provider and the
# booking time it is the key that recognises a line sent again (in a corrected or overlapping
# report, in any column order or number format: amounts are hashed as numbers, so 1.5 and
# 1.50 are the same). 64 bits suffice because the key also holds the booking time: two
# different lines would have to share provider, second and hash. It is computed from the
# stored values (migration 0004 computed it the same way for the lines it re-keyed).
FINGERPRINT = (
    "hashtextextended(concat_ws('|', record_type, provider_type, provider_reference, "
    "payment_reference, merchant_reference, currency, net_currency, batch), 0) "
    "# hash_numeric_extended(gross, 1) # hash_numeric_extended(fee, 2) "
    "# hash_numeric_extended(net, 3)"
)


def _insert_lines(report: SettlementImport, columns: Columns, layout: Layout) -> int:
    """`columns` is staged: three nested selects, so each raw column is trimmed and cast once,
    each normalized field computed once, however often the checks and the fingerprint read
    them (OFFSET 0 keeps each level whole; flattened, every reference would be evaluated
    again per line).

    Lines are inserted plainly first: a report rarely repeats a line we hold, and checking
    each line for a conflict costs more than the rare second attempt that skips them."""
    expressions = layout.expressions(columns)
    selected = ", ".join(
        f"{expressions[name]} AS {name}" for name in _NORMALIZED_FIELDS if name != "provider_type"
    )
    selected += f", left(coalesce({expressions['provider_type']}, ''), 64) AS provider_type"
    raw_suspicious = _suspicious_raw(
        columns, layout, report.provider_code, MerchantAccounts.of(report.provider_code)
    )
    table = SettlementLine._meta.db_table
    sql = (
        f"INSERT INTO {table} (settlement_import_id, provider_code, line_number, record_type, "
        "provider_type, provider_reference, payment_reference, merchant_reference, gross, fee, "
        "net, currency, net_currency, booked_at, batch, line_hash) "
        # A suspicious line stops the statement (division by zero, a DataError like a failed
        # cast) instead of costing every file a second pass over its lines.
        f"SELECT %s, %s, CASE WHEN raw_suspicious OR {_suspicious_normalized()} "
        "THEN line_no / 0 ELSE line_no END, record_type, provider_type, "
        "provider_reference, payment_reference, merchant_reference, gross, fee, net, currency, "
        f"net_currency, booked_at, batch, {FINGERPRINT} "
        f"FROM (SELECT line_no, {selected}, ({raw_suspicious}) AS raw_suspicious "
        f"FROM (SELECT line_no, {columns.staged_columns()} FROM {RAW_TABLE} OFFSET 0) staged "
        "OFFSET 0) normalized"
    )
    with connection.cursor() as cursor, transaction.atomic():
        # Times without a zone are UTC whatever the session's zone.
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        cursor.execute("SET LOCAL work_mem = '256MB'")
        try:
            with transaction.atomic():
                cursor.execute(sql, [report.pk, report.provider_code])
        except IntegrityError as error:
            if not isinstance(error.__cause__, psycopg2.errors.UniqueViolation):
                raise
            # Lines we hold already (or a line repeated within the file): keep the first.
            cursor.execute(
                sql + " ON CONFLICT (provider_code, booked_at, line_hash) DO NOTHING",
                [report.pk, report.provider_code],
            )
        return cursor.rowcount
