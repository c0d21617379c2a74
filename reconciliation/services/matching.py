"""Matching settlement lines against our transactions, set-based, in one transaction.

A run reads only open items (see `MatchingWatermark`): the lines loaded since the provider's
last run and the lines whose outcome is still a break or pending; our transactions from the
provider's `open_from` on, those the open lines were paired with, those with an active
`missing_at_provider` break, and those a line names by provider reference (found through
payments' index on it, however old). A day's run reads about as many rows on day 300 as on
day 1 (`summary["working_set"]` records how many). With them it:

1. pairs them on provider + provider reference (one hash join) and classifies every line by
   what that gives, into one temporary table; the lines left unpaired look their reference
   up among our older transactions;
2. pairs what is left on provider + kind + currency + amount (within the provider's tolerance)
   + booking time (within its window), each side taking its nearest candidate, only where the
   choice is mutual (a window function per side);
3. books chargebacks the provider reports and payments has not seen (`record_chargeback`), when
   the original deposit is known;
4. marks lines paired with a transaction an earlier line took (duplicates), checks each payout
   line against the sum of the batch it pays out (one-to-many), and classifies again only the
   lines steps 2-4 touched: matched, pending (inside the grace period) or a break;
5. upserts the breaks by a natural key (a persisting break keeps its id), clears breaks that
   are gone, and records the completed transactions the provider never reported.

No step loops over lines in Python; the only per-row Python is step 3, per unseen chargeback.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from payments import services as payments_services
from payments.models import Chargeback, Deposit, PaymentProvider, Refund, Withdrawal

from ..models import (
    Break,
    BreakTransition,
    BreakType,
    LineMatch,
    MatchingWatermark,
    ProviderPolicy,
    ReconciliationRun,
    SettlementImport,
    SettlementLine,
)
from ..progress import Progress

RT = SettlementLine.RecordType
LM = LineMatch.Status
BS = Break.Status

LINE = SettlementLine._meta.db_table
MATCH = LineMatch._meta.db_table
BREAK = Break._meta.db_table
TRANSITION = BreakTransition._meta.db_table
WATERMARK = MatchingWatermark._meta.db_table

# Our transactions completed this long before a run started may still have been invisible to
# it (their transaction not committed yet): the next run reads back at least this far.
IN_FLIGHT_MARGIN = timedelta(hours=1)

# Which of our transaction kinds a line type is paired with.
TX_KIND = {
    RT.PAYMENT: "deposit",
    RT.REFUND: "refund",
    RT.CHARGEBACK: "chargeback",
    RT.CHARGEBACK_REVERSAL: "chargeback",
    RT.PLAYER_PAYOUT: "withdrawal",
}
COMPLETED_DEPOSIT = (
    Deposit.Status.SUCCEEDED,
    Deposit.Status.REFUNDED,
    Deposit.Status.PARTIALLY_REFUNDED,
)


def policies(provider_codes: list[str]) -> dict[str, tuple[Decimal, int, int]]:
    """(amount tolerance, match window hours, grace period hours) per provider."""
    stored = {
        p.provider_code: (p.amount_tolerance, p.match_window_hours, p.grace_period_hours)
        for p in ProviderPolicy.objects.filter(provider_code__in=provider_codes)
    }
    default = (
        Decimal(str(settings.RECONCILIATION_DEFAULT_AMOUNT_TOLERANCE)),
        settings.RECONCILIATION_DEFAULT_MATCH_WINDOW_HOURS,
        settings.RECONCILIATION_DEFAULT_GRACE_PERIOD_HOURS,
    )
    return {code: stored.get(code, default) for code in provider_codes}


def start_run(*, kind: str, provider_code: str = "", triggered_by=None) -> ReconciliationRun:
    return ReconciliationRun.objects.create(
        kind=kind, provider_code=provider_code, triggered_by=triggered_by
    )


def match_settlements(
    *, run: ReconciliationRun, as_of: datetime | None = None
) -> ReconciliationRun:
    """Run matching for the run's provider (all providers with reports when blank).

    `as_of` is the moment the grace period counts back from (default now). The whole run is
    one transaction and runs of the same provider queue behind each other, so a failed run
    leaves the previous results in place and two runs never interleave.
    """
    as_of = as_of or timezone.now()
    ReconciliationRun.objects.filter(pk=run.pk).update(
        status=ReconciliationRun.Status.RUNNING, started_at=timezone.now(), phase="starting"
    )
    try:
        with Progress(ReconciliationRun, run.pk) as progress, transaction.atomic():
            summary = _match(run, as_of, progress)
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
        summary=summary,
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run


def _exec(sql: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _fetch(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _providers_in_scope(run: ReconciliationRun) -> list[str]:
    if run.provider_code:
        # An index probe, not a scan of every line.
        exists = SettlementLine.objects.filter(provider_code=run.provider_code).exists()
        return [run.provider_code] if exists else []
    # Every line was written by a loaded import: the imports say which providers have lines
    # without reading the lines.
    return sorted(
        set(
            SettlementImport.objects.filter(status=SettlementImport.Status.LOADED)
            .values_list("provider_code", flat=True)
            .distinct()
        )
    )


TEMP_TABLES = (
    "recon_policy, recon_open, recon_tx, recon_wanted, recon_lines, recon_unpaired, recon_batch_net"
)


def _match(run: ReconciliationRun, as_of: datetime, progress: Progress) -> dict:
    codes = _providers_in_scope(run)
    if not codes:
        return {"lines": 0, "providers": []}
    started = timezone.now()
    # Runs of one provider queue; runs of different providers proceed side by side.
    for code in codes:
        _exec("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [0x5E78, code])
    # And a run never overlaps a load of its providers (the loads' lock): the watermark says
    # every line up to an id has an outcome, which holds only if no line of the provider can
    # appear below it once the run has read the lines.
    for code in codes:
        _exec("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [0x5E7A, code])
    # Joins of a million rows stay in memory instead of spilling to disk, and the temporary
    # tables below get statistics from a small sample (the planner needs sizes, not detail).
    _exec("SET LOCAL work_mem = '256MB'")
    _exec("SET LOCAL default_statistics_target = 10")
    create_policy_table(codes)

    progress.update(force=True, phase="open items")
    working = _collect_open_lines(codes)
    progress.update(force=True, phase="our transactions")
    working.update(_create_transactions())

    progress.update(force=True, phase="pass 1: provider reference")
    total = _pair_on_reference(as_of)
    working["new_lines"] = total - working["open_lines"]
    working.update(_pair_named_by_reference())
    working["transactions"] += working["transactions_by_reference"]
    progress.update(force=True, rows_total=total, rows_processed=0, phase="unpaired")
    _collect_unpaired()
    progress.update(force=True, phase="pass 2: amount and date")
    _pair_on_amount_and_date()
    chargebacks = _book_unseen_chargebacks()
    _mark_duplicates()

    progress.update(force=True, phase="classifying")
    _create_batch_nets()
    _reclassify(as_of)
    counts = _record_outcomes(run)
    progress.update(force=True, rows_processed=total, phase="breaks")
    pending_internal = _record_internal_breaks(run)
    _advance_watermarks(run, started)
    summary = _summary(run, codes, total, counts, pending_internal, chargebacks)
    summary["working_set"] = working
    _exec(f"DROP TABLE IF EXISTS {TEMP_TABLES}")
    return summary


def create_policy_table(codes: list[str]) -> None:
    """Temporary `recon_policy`: each provider's tolerances and the span its reports cover."""
    _exec(f"DROP TABLE IF EXISTS {TEMP_TABLES}")
    _exec(
        "CREATE TEMPORARY TABLE recon_policy (provider_code text PRIMARY KEY, "
        "tolerance numeric, match_window interval, grace interval, covered_from timestamptz, "
        "covered_to timestamptz, lines_through bigint NOT NULL DEFAULT 0, "
        "open_from timestamptz) ON COMMIT DROP"
    )
    rows = [
        (code, tolerance, f"{window} hours", f"{grace} hours")
        for code, (tolerance, window, grace) in policies(codes).items()
    ]
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO recon_policy (provider_code, tolerance, match_window, grace) "
            "VALUES (%s, %s, %s::interval, %s::interval)",
            rows,
        )
    # A provider's reports cover from its first line to its last: our transactions before
    # that were never due in them, and after it are not due yet.
    # One subquery each: two probes at the ends of the line key's index per provider, not a
    # scan of every line the provider ever reported.
    _exec(
        "UPDATE recon_policy p SET "
        f"covered_from = (SELECT min(booked_at) FROM {LINE} l "
        "WHERE l.provider_code = p.provider_code), "
        f"covered_to = (SELECT max(booked_at) FROM {LINE} l "
        "WHERE l.provider_code = p.provider_code), "
        f"lines_through = coalesce((SELECT w.lines_through FROM {WATERMARK} w "
        "WHERE w.provider_code = p.provider_code), 0), "
        f"open_from = (SELECT w.open_from FROM {WATERMARK} w "
        "WHERE w.provider_code = p.provider_code)"
    )


# Which of our transactions a query reads, per kind: a condition on the transaction's time
# (`{at}`), id (`{id}`), provider reference (`{ref}`) or kind (`{kind}`), and on its
# provider's `recon_policy` row (`pol`) and payment provider (`p`).
# The first bound is one value for the whole statement (an init plan), so an index on when
# the transaction happened can serve it; the second is each provider's own.
SINCE_OPEN_FROM = (
    "{at} >= (SELECT min(coalesce(open_from, covered_from - match_window, '-infinity')) "
    "FROM recon_policy) "
    "AND {at} >= coalesce(pol.open_from, pol.covered_from - pol.match_window, '-infinity')"
)
# By id or by reference, as an array the index is probed with (an index scan whatever the
# planner guesses of a temporary table's size), never a join with every transaction.
WANTED_BY_ID = "{id} = ANY(ARRAY(SELECT w.id FROM recon_wanted w WHERE w.kind = '{kind}'))"
NAMED_BY_A_LINE = (
    "{ref} = ANY(ARRAY(SELECT r.provider_reference FROM recon_refs r WHERE r.kind = '{kind}'))"
)


def our_transactions_sql(scope: str = SINCE_OPEN_FROM) -> str:
    """Our deposits, withdrawals, refunds and chargebacks of the providers in `recon_policy`
    that `scope` selects (see SINCE_OPEN_FROM), amounts signed as a provider reports them
    (money to us positive). `is_completed`: the provider should report it; `is_booked`: it is
    in the ledger (a refund is taken from the player when requested, before the provider
    confirms it)."""
    deposit, withdrawal = Deposit._meta.db_table, Withdrawal._meta.db_table
    refund, chargeback = Refund._meta.db_table, Chargeback._meta.db_table
    provider = PaymentProvider._meta.db_table
    completed = ", ".join(f"'{s}'" for s in COMPLETED_DEPOSIT)

    def where(kind: str, alias: str, at: str) -> str:
        condition = scope.format(
            at=at, id=f"{alias}.id", ref=f"{alias}.provider_reference", kind=kind
        )
        return f"JOIN recon_policy pol ON pol.provider_code = p.code WHERE {condition}"

    return (
        "SELECT 'deposit'::text AS kind, d.id, p.code AS provider_code, d.provider_reference, "
        "d.reference, coalesce(d.amount_received, d.amount) AS amount, "
        f"d.currency_id AS currency, d.status IN ({completed}) AS is_completed, "
        f"d.status IN ({completed}) AS is_booked, "
        "d.status::text AS status, coalesce(d.completed_at, d.created_at) AS happened_at "
        f"FROM {deposit} d JOIN {provider} p ON p.id = d.provider_id "
        + where("deposit", "d", "coalesce(d.completed_at, d.created_at)")
        + " UNION ALL "
        "SELECT 'withdrawal', w.id, p.code, w.provider_reference, w.reference, -w.amount, "
        f"w.currency_id, w.status = '{Withdrawal.Status.PAID}', "
        f"w.status = '{Withdrawal.Status.PAID}', w.status, "
        "coalesce(w.completed_at, w.created_at) "
        f"FROM {withdrawal} w JOIN {provider} p ON p.id = w.provider_id "
        + where("withdrawal", "w", "coalesce(w.completed_at, w.created_at)")
        + " UNION ALL "
        "SELECT 'refund', r.id, p.code, r.provider_reference, r.reference, -r.amount, "
        f"d.currency_id, r.status = '{Refund.Status.SUCCEEDED}', "
        f"r.status <> '{Refund.Status.FAILED}', r.status, coalesce(r.completed_at, r.created_at) "
        f"FROM {refund} r JOIN {deposit} d ON d.id = r.deposit_id "
        f"JOIN {provider} p ON p.id = d.provider_id "
        + where("refund", "r", "coalesce(r.completed_at, r.created_at)")
        + " UNION ALL "
        # A chargeback happened when the provider booked it (`occurred_at`), not when we
        # learnt of it. A held one (its deposit not credited yet) moved no money; a reversed
        # one was given back: neither is in the ledger.
        "SELECT 'chargeback', c.id, p.code, c.provider_reference, d.reference, -c.amount, "
        f"d.currency_id, c.status <> '{Chargeback.Status.HELD}', "
        f"c.status = '{Chargeback.Status.RECEIVED}', c.status, "
        "coalesce(c.occurred_at, c.created_at) "
        f"FROM {chargeback} c JOIN {deposit} d ON d.id = c.deposit_id "
        f"JOIN {provider} p ON p.id = d.provider_id "
        + where("chargeback", "c", "coalesce(c.occurred_at, c.created_at)")
    )


def _line_columns() -> str:
    """A line `l` with the kind of our transaction it pairs with and the amount compared."""
    tx_kind = " ".join(f"WHEN '{t}' THEN '{k}'" for t, k in TX_KIND.items())
    # Named, not l.*: the same list, in the same order, for new and open lines.
    fields = ", ".join(f"l.{field.column}" for field in SettlementLine._meta.concrete_fields)
    return (
        f"{fields}, "
        f"(CASE l.record_type {tx_kind} END) AS tx_kind, "
        # A chargeback reversal gives back what the chargeback took: compare it negated.
        f"(CASE WHEN l.record_type = '{RT.CHARGEBACK_REVERSAL}' THEN -l.gross ELSE l.gross END)"
        " AS line_amount"
    )


def _collect_open_lines(codes: list[str]) -> dict:
    """Temporary `recon_open`: the lines read again because their outcome is still a break
    or pending, found through the small partial index on those outcomes (whose rows are
    deleted: the run writes them again), with the transaction each was paired with. The new
    lines, above each provider's `lines_through`, are read by pass 1 straight from the lines
    (a range of the primary key), not copied first."""
    _exec(
        "CREATE TEMPORARY TABLE recon_open ON COMMIT DROP AS "
        f"SELECT {_line_columns()}, m.internal_kind AS prior_kind, m.internal_id AS prior_id "
        f"FROM {MATCH} m JOIN {LINE} l ON l.id = m.line_id "
        f"WHERE m.status IN ('{LM.BREAK}', '{LM.PENDING}') AND l.provider_code = ANY(%s)",
        [codes],
    )
    opened = _exec(
        f"DELETE FROM {MATCH} m USING recon_open o WHERE m.line_id = o.id "
        f"AND m.status IN ('{LM.BREAK}', '{LM.PENDING}')"
    )
    _exec("ANALYZE recon_open")
    return {"open_lines": opened}


def _new_lines_sql() -> str:
    """The lines above each provider's `lines_through`: one primary-key range per provider."""
    branches = [
        f"SELECT {_line_columns()} FROM {LINE} l WHERE l.id > {int(through)} "
        f"AND l.provider_code = {_literal(code)}"
        for code, through in _fetch(
            "SELECT provider_code, lines_through FROM recon_policy ORDER BY 1"
        )
    ]
    return " UNION ALL ".join(branches)


def _literal(value: str) -> str:
    with connection.cursor() as cursor:
        return cursor.mogrify("%s", [value]).decode()


_TX_COLUMNS = (
    "kind, id, provider_code, provider_reference, reference, amount, currency, "
    "is_completed, is_booked, status, happened_at"
)


def _create_transactions() -> dict:
    """Temporary `recon_tx`, our side of this run (see `our_transactions_sql`): our
    transactions from each provider's `open_from`, and those the open lines were paired with
    or that have an active `missing_at_provider` break (older ones stay in play only so).
    Those a line names by reference come after pass 1 (`_pair_named_by_reference`).

    `is_taken`: already settled for good against an earlier line (probed through the
    outcomes' index on the transaction); a new line that pairs with it on reference is a
    duplicate, and nothing else may pair with it. Returns how many of each."""
    recent = _exec(
        "CREATE TEMPORARY TABLE recon_tx ON COMMIT DROP AS "
        f"SELECT {_TX_COLUMNS}, false AS is_taken FROM ({our_transactions_sql()}) t"
    )
    _exec(
        "CREATE TEMPORARY TABLE recon_wanted ON COMMIT DROP AS "
        "SELECT DISTINCT prior_kind AS kind, prior_id AS id FROM recon_open "
        "WHERE prior_id IS NOT NULL AND prior_kind <> '' UNION "
        f"SELECT internal_kind, internal_id FROM {BREAK} "
        f"WHERE status IN ('open', 'investigating', 'awaiting_approval') "
        f"AND break_type = '{BreakType.MISSING_AT_PROVIDER}' "
        "AND provider_code IN (SELECT provider_code FROM recon_policy)"
    )
    # Those read already (a hash of the few wanted, one pass over what was read).
    _exec("DELETE FROM recon_wanted w USING recon_tx t WHERE t.kind = w.kind AND t.id = w.id")
    _exec("ANALYZE recon_wanted")
    open_items = _exec(
        f"INSERT INTO recon_tx ({_TX_COLUMNS}, is_taken) SELECT {_TX_COLUMNS}, false "
        f"FROM ({our_transactions_sql(WANTED_BY_ID)}) t"
    )
    _exec("ANALYZE recon_tx")
    _mark_taken("recon_tx")
    return {
        "transactions": recent + open_items,
        "transactions_since_open_from": recent,
        "transactions_open_items": open_items,
    }


def _mark_taken(table: str) -> None:
    """Taken by a line settled for good (this run's open lines lost their outcomes above):
    one index probe per transaction read, not a join with every outcome ever written."""
    _exec("SET LOCAL enable_hashjoin = off")
    _exec("SET LOCAL enable_mergejoin = off")
    _exec(
        f"UPDATE {table} t SET is_taken = true WHERE EXISTS (SELECT 1 FROM "
        f"{MATCH} m WHERE m.internal_id = t.id AND m.internal_kind = t.kind)"
    )
    _exec("SET LOCAL enable_hashjoin = on")
    _exec("SET LOCAL enable_mergejoin = on")


def _pair_named_by_reference() -> dict:
    """Our transactions a line left unpaired by pass 1 names by provider reference (a
    chargeback line: its payment's deposit, for `_book_unseen_chargebacks`), that the run did
    not read yet: a line arriving for a transaction matched long ago, or older than the
    watermark. The few references are probed in payments' index on the reference; what is
    found joins `recon_tx` and pairs with its lines, which are classified again."""
    _exec(
        "CREATE TEMPORARY TABLE recon_refs ON COMMIT DROP AS "
        "SELECT DISTINCT tx_kind AS kind, provider_reference FROM recon_lines "
        "WHERE tx_id IS NULL AND tx_kind IS NOT NULL AND provider_reference <> '' "
        "UNION SELECT 'deposit', payment_reference FROM recon_lines "
        f"WHERE tx_id IS NULL AND record_type = '{RT.CHARGEBACK}' AND payment_reference <> ''"
    )
    _exec("ANALYZE recon_refs")
    _exec(
        "CREATE TEMPORARY TABLE recon_named ON COMMIT DROP AS "
        f"SELECT {_TX_COLUMNS}, false AS is_taken FROM ({our_transactions_sql(NAMED_BY_A_LINE)}) t"
    )
    _exec("DELETE FROM recon_named n USING recon_tx t WHERE t.kind = n.kind AND t.id = n.id")
    _mark_taken("recon_named")
    by_reference = _exec("INSERT INTO recon_tx SELECT * FROM recon_named")
    if by_reference:
        # Several of ours may share a reference: each line takes the first, as in pass 1.
        _set_pair(
            "SELECT DISTINCT ON (l.id) l.id AS line_id, t.* FROM recon_lines l "
            "JOIN recon_named t ON t.provider_code = l.provider_code AND t.kind = l.tx_kind "
            "AND t.provider_reference = l.provider_reference "
            "WHERE l.tx_id IS NULL AND l.provider_reference <> '' ORDER BY l.id, t.id"
        )
        _exec("ANALYZE recon_tx")
    _exec("DROP TABLE recon_refs, recon_named")
    return {"transactions_by_reference": by_reference}


def _advance_watermarks(run: ReconciliationRun, started: datetime) -> None:
    """After the outcomes and breaks are written: every line read has an outcome, and every
    completed transaction of ours that happened before `covered_to - grace - match_window`
    is taken by a line or due (a break). The next run reads from there, and never less than
    IN_FLIGHT_MARGIN before this run started (a transaction that completed then may not have
    been committed yet)."""
    _exec(
        f"INSERT INTO {WATERMARK} (provider_code, lines_through, open_from, last_run_id, "
        "updated_at) SELECT pol.provider_code, greatest(pol.lines_through, "
        "(SELECT max(l.id) FROM recon_lines l WHERE l.provider_code = pol.provider_code)), "
        "least(pol.covered_to - pol.grace - pol.match_window, %(in_flight)s), %(run)s, now() "
        "FROM recon_policy pol "
        "ON CONFLICT (provider_code) DO UPDATE SET lines_through = EXCLUDED.lines_through, "
        "open_from = EXCLUDED.open_from, last_run_id = EXCLUDED.last_run_id, "
        "updated_at = EXCLUDED.updated_at",
        {"in_flight": started - IN_FLIGHT_MARGIN, "run": run.pk},
    )


def _outcome_sql(batch_net: str) -> str:
    """The select list that classifies a line `l` (a `recon_lines` row: the line and the
    transaction it pairs with, if any) under its provider's policy `pol`; `batch_net` is
    what the line's payout batch adds up to (payout lines only)."""
    linked = ", ".join(f"'{t}'" for t in TX_KIND)
    return (
        f"{batch_net} AS batch_net, coalesce(CASE WHEN l.tx_id IS NOT NULL THEN l.tx_kind "
        f"WHEN l.record_type = '{RT.MERCHANT_PAYOUT}' THEN 'batch' "
        f"WHEN l.record_type = '{RT.FEE}' THEN 'fee' END, '') AS internal_kind, "
        "(l.tx_id IS NULL AND l.booked_at > %(as_of)s - pol.grace "
        f"AND l.record_type IN ({linked})) AS is_pending, "
        "CASE "
        # A line pairing with a transaction an earlier line (or an earlier line of this
        # run) already took: the provider reported it twice.
        f"WHEN l.tx_id IS NOT NULL AND (l.tx_taken OR l.is_repeat) THEN '{BreakType.DUPLICATE}' "
        "WHEN l.tx_id IS NOT NULL AND (l.tx_currency <> l.currency "
        f"OR l.net_currency <> l.currency) THEN '{BreakType.CURRENCY_MISMATCH}' "
        f"WHEN l.tx_id IS NOT NULL AND NOT l.tx_completed THEN '{BreakType.STATUS_MISMATCH}' "
        "WHEN l.tx_id IS NOT NULL AND abs(l.tx_amount - l.line_amount) > pol.tolerance "
        f"THEN '{BreakType.AMOUNT_MISMATCH}' "
        "WHEN l.tx_id IS NOT NULL AND abs(extract(epoch FROM l.booked_at - l.tx_happened_at)) "
        f"> extract(epoch FROM pol.grace) THEN '{BreakType.TIMING_DIFFERENCE}' "
        "WHEN l.tx_id IS NOT NULL THEN '' "
        f"WHEN l.record_type = '{RT.FEE}' THEN '' "
        f"WHEN l.record_type = '{RT.MERCHANT_PAYOUT}' THEN "
        f"(CASE WHEN l.batch <> '' AND abs(-l.net - coalesce({batch_net}, 0)) <= pol.tolerance "
        f"THEN '' ELSE '{BreakType.AMOUNT_MISMATCH}' END) "
        f"WHEN l.booked_at > %(as_of)s - pol.grace AND l.record_type IN ({linked}) THEN '' "
        f"ELSE '{BreakType.MISSING_IN_LEDGER}' END AS break_type"
    )


def _status_sql(row: str) -> str:
    """A line's status from the outcome columns of `row`."""
    return (
        f"CASE WHEN {row}.break_type <> '' THEN '{LM.BREAK}' "
        f"WHEN {row}.is_pending THEN '{LM.PENDING}' ELSE '{LM.MATCHED}' END"
    )


def _pair_on_reference(as_of: datetime) -> int:
    """Temporary `recon_lines`: every line without a final outcome, with the transaction it
    pairs with on provider + kind + provider reference (pass 1), what classification needs
    of that transaction, and the outcome this gives. Most lines are settled by it; the steps
    after it pair or re-number a few and mark them `reclassify`. Returns the number of lines.
    """
    open_lines = (
        ", ".join(f"o.{field.column}" for field in SettlementLine._meta.concrete_fields)
        + ", o.tx_kind, o.line_amount"
    )
    # Every pass pairs a line only with a transaction of its `tx_kind`, so with `tx_id` that
    # column names the paired transaction too.
    paired = (
        "SELECT l.id, l.provider_code, l.record_type, l.provider_reference, "
        "l.payment_reference, l.gross, l.net, l.currency, l.net_currency, l.booked_at, l.batch, "
        "l.tx_kind, l.line_amount, t.id AS tx_id, t.reference AS tx_reference, "
        "t.amount AS tx_amount, t.currency AS tx_currency, t.is_completed AS tx_completed, "
        "t.status AS tx_status, t.happened_at AS tx_happened_at, "
        "coalesce(t.is_taken, false) AS tx_taken, false AS is_repeat "
        f"FROM ({_new_lines_sql()} UNION ALL SELECT {open_lines} FROM recon_open o) l "
        "LEFT JOIN recon_tx t ON t.provider_code = l.provider_code "
        "AND t.kind = l.tx_kind AND t.provider_reference = l.provider_reference "
        "AND l.provider_reference <> ''"
    )

    def create(source: str) -> int:
        # OFFSET 0: the outcome is computed once per line, not again where status reads it.
        return _exec(
            "CREATE TEMPORARY TABLE recon_lines ON COMMIT DROP AS "
            f"SELECT c.*, {_status_sql('c')} AS status FROM ("
            f"SELECT l.*, {_outcome_sql('NULL::numeric')}, "
            f"(l.tx_id IS NULL OR l.record_type = '{RT.MERCHANT_PAYOUT}') AS reclassify "
            f"FROM ({source}) l JOIN recon_policy pol ON pol.provider_code = l.provider_code "
            "OFFSET 0) c",
            {"as_of": as_of},
        )

    total = create(paired)
    try:
        with transaction.atomic():
            _exec("CREATE UNIQUE INDEX recon_lines_id ON recon_lines (id)")
    except IntegrityError:
        # Several of our transactions share a provider reference (rare): each line keeps the
        # first, as it would with DISTINCT ON, which every run would otherwise pay a sort for.
        _exec("DROP TABLE recon_lines")
        total = create(f"SELECT DISTINCT ON (id) * FROM ({paired}) p ORDER BY id, tx_id")
        _exec("CREATE UNIQUE INDEX recon_lines_id ON recon_lines (id)")
    _exec("ANALYZE recon_lines")
    return total


def _reclassify(as_of: datetime) -> None:
    """The outcome of the lines the steps after pass 1 touched, and of payout lines, whose
    batches are summed by now."""
    _exec(
        "UPDATE recon_lines l SET batch_net = c.batch_net, internal_kind = c.internal_kind, "
        "is_pending = c.is_pending, break_type = c.break_type, "
        f"status = {_status_sql('c')} "
        f"FROM (SELECT l.id, {_outcome_sql('b.batch_net')} FROM recon_lines l "
        "JOIN recon_policy pol ON pol.provider_code = l.provider_code "
        f"LEFT JOIN recon_batch_net b ON l.record_type = '{RT.MERCHANT_PAYOUT}' "
        "AND b.provider_code = l.provider_code AND b.batch = l.batch "
        "AND b.net_currency = l.net_currency WHERE l.reclassify) c WHERE l.id = c.id",
        {"as_of": as_of},
    )


def _collect_unpaired() -> None:
    """Temporary `recon_unpaired`: our completed transactions no line paired with on
    reference (one anti-join, used by pass 2 and then by the missing-at-provider breaks).
    `is_due`: completed before the grace period ended, within what the reports cover."""
    _exec(
        "CREATE TEMPORARY TABLE recon_unpaired ON COMMIT DROP AS "
        "SELECT t.*, t.happened_at <= pol.covered_to - pol.grace AS is_due "
        "FROM recon_tx t JOIN recon_policy pol ON pol.provider_code = t.provider_code "
        "WHERE t.is_completed AND NOT t.is_taken "
        "AND NOT EXISTS (SELECT 1 FROM recon_lines l WHERE l.tx_kind = t.kind AND l.tx_id = t.id)"
    )
    _exec("CREATE INDEX ON recon_unpaired (provider_code, kind, currency, amount)")
    _exec("ANALYZE recon_unpaired")


def _set_pair(source: str, params=None) -> None:
    """Pair lines with transactions: `source` selects `line_id` and the transaction's
    `recon_tx` columns."""
    _exec(
        "UPDATE recon_lines l SET tx_id = p.id, tx_reference = p.reference, "
        "tx_amount = p.amount, tx_currency = p.currency, tx_completed = p.is_completed, "
        "tx_status = p.status, tx_happened_at = p.happened_at, tx_taken = p.is_taken, "
        f"reclassify = true FROM ({source}) p WHERE l.id = p.line_id",
        params,
    )


def _pair_on_amount_and_date() -> None:
    """What pass 1 left: nearest in time among equal amounts (within tolerance), mutual."""
    # Lines left are few: materialize them, each with its own bounds, so the join is one
    # index range scan per line instead of every line against every transaction of the
    # same currency.
    _exec(
        "CREATE TEMPORARY TABLE recon_lines_left ON COMMIT DROP AS "
        "SELECT l.id, l.provider_code, l.tx_kind, l.currency, l.booked_at, "
        "l.line_amount - pol.tolerance AS amount_from, l.line_amount + pol.tolerance AS amount_to, "
        "l.booked_at - pol.match_window AS time_from, l.booked_at + pol.match_window AS time_to "
        "FROM recon_lines l JOIN recon_policy pol ON pol.provider_code = l.provider_code "
        "WHERE l.tx_kind IS NOT NULL AND l.tx_id IS NULL"
    )
    _exec("ANALYZE recon_lines_left")
    _exec("SET LOCAL enable_hashjoin = off")
    _exec("SET LOCAL enable_mergejoin = off")
    _exec(
        "CREATE TEMPORARY TABLE recon_pass2 ON COMMIT DROP AS "
        "SELECT * FROM ("
        "SELECT l.id AS line_id, t.*, "
        "row_number() OVER (PARTITION BY l.id ORDER BY "
        "abs(extract(epoch FROM l.booked_at - t.happened_at)), t.id) AS line_rank, "
        "row_number() OVER (PARTITION BY t.kind, t.id ORDER BY "
        "abs(extract(epoch FROM l.booked_at - t.happened_at)), l.id) AS tx_rank "
        "FROM recon_lines_left l "
        "JOIN recon_unpaired t ON t.provider_code = l.provider_code AND t.kind = l.tx_kind "
        "AND t.currency = l.currency AND t.amount BETWEEN l.amount_from AND l.amount_to "
        "AND t.happened_at BETWEEN l.time_from AND l.time_to"
        ") candidates WHERE line_rank = 1 AND tx_rank = 1"
    )
    _exec("ALTER TABLE recon_pass2 DROP COLUMN line_rank, DROP COLUMN tx_rank")
    _exec("SET LOCAL enable_hashjoin = on")
    _exec("SET LOCAL enable_mergejoin = on")
    _set_pair("SELECT * FROM recon_pass2")
    _exec("DELETE FROM recon_unpaired t USING recon_pass2 p WHERE t.kind = p.kind AND t.id = p.id")
    _exec("DROP TABLE recon_lines_left, recon_pass2")


def _mark_duplicates() -> None:
    """Lines after the first paired with the same transaction: the provider reported it
    again. Only transactions paired more than once can have a repeat: a hash aggregate finds
    those few, so the window sorts them instead of every line."""
    _exec(
        "UPDATE recon_lines l SET is_repeat = true, reclassify = true FROM ("
        "SELECT id, row_number() OVER (PARTITION BY tx_kind, tx_id ORDER BY id) AS n "
        "FROM recon_lines WHERE (tx_kind, tx_id) IN (SELECT tx_kind, tx_id FROM recon_lines "
        "WHERE tx_id IS NOT NULL GROUP BY tx_kind, tx_id HAVING count(*) > 1)"
        ") numbered WHERE numbered.n > 1 AND numbered.id = l.id"
    )


def _book_unseen_chargebacks() -> int:
    """A chargeback line with no chargeback of ours, whose payment we know: book it through
    payments (idempotent by the provider's reference) and pair the line with it."""
    rows = _fetch(
        "SELECT l.id, t.id, l.provider_reference, -l.gross, l.booked_at FROM recon_lines l "
        "JOIN recon_tx t ON t.kind = 'deposit' AND t.provider_code = l.provider_code "
        "AND t.provider_reference = l.payment_reference "
        f"WHERE l.record_type = '{RT.CHARGEBACK}' AND l.provider_reference <> '' "
        "AND l.payment_reference <> '' AND t.is_completed AND l.gross < 0 "
        "AND l.tx_id IS NULL ORDER BY l.id"
    )
    if not rows:
        return 0
    # Each chargeback below looks our side up by id.
    _exec("CREATE INDEX IF NOT EXISTS recon_tx_id ON recon_tx (kind, id)")
    deposits = Deposit.objects.select_related("provider", "player").in_bulk(
        [deposit_id for _, deposit_id, _, _, _ in rows]
    )
    for line_id, deposit_id, provider_reference, amount, booked_at in rows:
        # Stamped with the line's booking time: classification compares that with the line,
        # so a chargeback first seen in an old report is not a timing difference.
        chargeback = payments_services.record_chargeback(
            deposit=deposits[deposit_id],
            amount=amount,
            provider_reference=provider_reference,
            reason="reported in the provider's settlement report",
            occurred_at=booked_at,
        )
        _exec(
            "INSERT INTO recon_tx (kind, id, provider_code, provider_reference, reference, "
            "amount, currency, is_completed, is_booked, status, happened_at, is_taken) "
            "SELECT 'chargeback', c.id, t.provider_code, c.provider_reference, t.reference, "
            f"-c.amount, t.currency, c.status <> '{Chargeback.Status.HELD}', "
            f"c.status = '{Chargeback.Status.RECEIVED}', c.status, "
            "coalesce(c.occurred_at, c.created_at), false "
            f"FROM {Chargeback._meta.db_table} c, recon_tx t "
            "WHERE c.id = %s AND t.kind = 'deposit' AND t.id = %s "
            "AND NOT EXISTS (SELECT 1 FROM recon_tx x WHERE x.kind = 'chargeback' AND x.id = c.id)",
            [chargeback.pk, deposit_id],
        )
        _set_pair(
            "SELECT %s::bigint AS line_id, t.* FROM recon_tx t "
            "WHERE t.kind = 'chargeback' AND t.id = %s",
            [line_id, chargeback.pk],
        )
    return len(rows)


def _create_batch_nets() -> None:
    """Temporary `recon_batch_net`: what each payout batch of the open payout lines adds up
    to, per net currency (a batch holding several currencies has one payout per currency):
    every line in it but payouts, from any import. Summed once here; classification and the
    breaks read the few rows instead of summing the batches' lines again each."""
    _exec(
        "CREATE TEMPORARY TABLE recon_batch_net ON COMMIT DROP AS "
        f"SELECT s.provider_code, s.batch, s.net_currency, sum(s.net) AS batch_net FROM {LINE} s "
        f"WHERE s.batch <> '' AND s.record_type <> '{RT.MERCHANT_PAYOUT}' "
        "AND (s.provider_code, s.batch) IN (SELECT provider_code, batch FROM recon_lines "
        f"WHERE record_type = '{RT.MERCHANT_PAYOUT}') "
        "GROUP BY s.provider_code, s.batch, s.net_currency"
    )
    _exec("ANALYZE recon_batch_net")


_BREAK_COLUMNS = (
    f"INSERT INTO {BREAK} (break_type, key, provider_code, currency, line_id, internal_kind, "
    "internal_id, internal_reference, our_amount, provider_amount, difference, detail, "
    "status, resolution, first_run_id, last_run_id, detected_at, last_seen_at) "
)
# The predicate of the `one_break_per_identity` index, written as Django writes it so that
# ON CONFLICT infers that index.
_HOLDS_IDENTITY = "NOT (resolution IN ('cleared', 'superseded'))"
# A persisting break keeps its id: the same key updates the active break. A break a person
# closed keeps its identity too, and stays closed: the conflict with it does nothing, so a
# resolved break is never re-opened under a new id and its money never booked twice.
_BREAK_UPSERT = (
    f"ON CONFLICT (key) WHERE {_HOLDS_IDENTITY} "
    "DO UPDATE SET last_run_id = EXCLUDED.last_run_id, last_seen_at = EXCLUDED.last_seen_at, "
    "our_amount = EXCLUDED.our_amount, provider_amount = EXCLUDED.provider_amount, "
    "difference = EXCLUDED.difference, detail = EXCLUDED.detail "
    f"WHERE {BREAK}.status IN ('open', 'investigating', 'awaiting_approval')"
)


def _record_outcomes(run: ReconciliationRun) -> dict:
    """Write every open line's outcome and upsert the breaks among them; return the count
    per (status, break type)."""
    now = timezone.now()
    params = {"run": run.pk, "now": now}
    # A line whose break a person already closed is settled for good, even if the closing
    # raced with this run (the run had already taken the line's outcome away).
    _exec(
        f"UPDATE recon_lines c SET status = '{LM.RESOLVED}' FROM {BREAK} b "
        f"WHERE c.status = '{LM.BREAK}' AND b.key = c.break_type || ':line:' || c.id "
        f"AND {_HOLDS_IDENTITY.replace('resolution', 'b.resolution')} "
        "AND b.status IN ('resolved', 'written_off')"
    )
    _exec(
        f"INSERT INTO {MATCH} (line_id, status, break_type, internal_kind, internal_id, run_id) "
        "SELECT id, status, break_type, internal_kind, tx_id, %(run)s FROM recon_lines",
        params,
    )
    # Amounts are from the merchant's side; a payout's "ours" is its batch.
    _exec(
        _BREAK_COLUMNS + "SELECT c.break_type, c.break_type || ':line:' || c.id, c.provider_code, "
        "c.currency, c.id, c.internal_kind, c.tx_id, coalesce(c.tx_reference, ''), "
        "CASE WHEN c.record_type = 'merchant_payout' THEN coalesce(c.batch_net, 0) "
        "WHEN c.tx_id IS NULL THEN 0 ELSE c.tx_amount END, "
        "CASE WHEN c.record_type = 'merchant_payout' THEN -c.net ELSE c.line_amount END, "
        # A duplicate line is money reported twice: the whole line is the difference.
        "CASE WHEN c.break_type = 'duplicate' THEN c.line_amount "
        "WHEN c.break_type IN ('status_mismatch', 'currency_mismatch') THEN c.line_amount "
        "WHEN c.record_type = 'merchant_payout' THEN -c.net - coalesce(c.batch_net, 0) "
        "ELSE c.line_amount - coalesce(c.tx_amount, 0) END, "
        "left(concat_ws(' ', c.record_type, nullif(c.provider_reference, ''), "
        "CASE WHEN c.tx_id IS NOT NULL THEN 'ours: ' || c.tx_status END), 255), "
        "'open', '', %(run)s, %(run)s, %(now)s, %(now)s "
        f"FROM recon_lines c WHERE c.status = '{LM.BREAK}' " + _BREAK_UPSERT,
        params,
    )
    rows = _fetch("SELECT status, break_type, count(*) FROM recon_lines GROUP BY 1, 2")
    return {(status, break_type): count for status, break_type, count in rows}


def _record_internal_breaks(run: ReconciliationRun) -> int:
    """Breaks for our completed transactions no line pairs with, past the grace period
    before the end of what the provider's reports cover; clear the breaks that are gone.
    Returns how many of ours are still inside the grace period (pending, not breaks)."""
    now = timezone.now()
    params = {"run": run.pk, "now": now}
    _exec(
        _BREAK_COLUMNS
        + "SELECT 'missing_at_provider', 'missing_at_provider:' || t.kind || ':' || t.id, "
        "t.provider_code, t.currency, NULL, t.kind, t.id, t.reference, t.amount, 0, -t.amount, "
        "left(t.kind || ' ' || t.status || ' ' || t.provider_reference, 255), "
        "'open', '', %(run)s, %(run)s, %(now)s, %(now)s "
        "FROM recon_unpaired t WHERE t.is_due " + _BREAK_UPSERT,
        params,
    )
    pending_internal = _fetch("SELECT count(*) FROM recon_unpaired WHERE NOT is_due")[0][0]
    # Breaks this run evaluated the subject of (a line it read, one of our transactions it
    # read) and did not find again are gone: cleared, with the audit row a transition by
    # hand would leave. A break whose subject the run did not read is left as it is: not
    # seeing it says nothing. Awaiting approval stays with its approver.
    _exec(
        "WITH gone AS ("
        f"SELECT b.id, b.status FROM {BREAK} b WHERE b.status IN ('open', 'investigating') "
        "AND b.last_run_id <> %(run)s "
        "AND b.provider_code IN (SELECT provider_code FROM recon_policy) "
        "AND (b.line_id IN (SELECT id FROM recon_lines) OR (b.line_id IS NULL AND EXISTS ("
        "SELECT 1 FROM recon_tx t WHERE t.kind = b.internal_kind AND t.id = b.internal_id))) "
        "FOR UPDATE OF b), cleared AS ("
        f"UPDATE {BREAK} b SET status = 'resolved', resolution = 'cleared', closed_at = %(now)s "
        "FROM gone WHERE b.id = gone.id RETURNING b.id, gone.status AS before) "
        f"INSERT INTO {TRANSITION} (brk_id, from_status, to_status, actor_id, reason, created_at) "
        "SELECT id, before, 'resolved', NULL, 'not found again by run ' || %(run)s, %(now)s "
        "FROM cleared",
        params,
    )
    return pending_internal


def _summary(run, codes, total, counts, pending_internal, chargebacks) -> dict:
    by_status: dict[str, int] = {}
    breaks: dict[str, int] = {}
    for (status, break_type), count in counts.items():
        by_status[status] = by_status.get(status, 0) + count
        if break_type:
            breaks[break_type] = count
    missing = Break.objects.filter(last_run=run, break_type=BreakType.MISSING_AT_PROVIDER).count()
    if missing:
        breaks[BreakType.MISSING_AT_PROVIDER] = missing
    return {
        "providers": codes,
        "lines": total,
        "matched": by_status.get(LM.MATCHED, 0),
        "pending": by_status.get(LM.PENDING, 0),
        "line_breaks": by_status.get(LM.BREAK, 0),
        "breaks": breaks,
        "pending_transactions": pending_internal,
        "chargebacks_booked": chargebacks,
    }
