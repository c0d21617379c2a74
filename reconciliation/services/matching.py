"""Matching settlement lines against our transactions, set-based, in one transaction.

A run takes the lines not yet settled for good (no LineMatch, or a break or pending one) and
our transactions of the same providers since their first report, and:

1. pairs them on provider + provider reference (one hash join);
2. pairs what is left on provider + kind + currency + amount (within the provider's tolerance)
   + booking time (within its window), each side taking its nearest candidate, only where the
   choice is mutual (a window function per side);
3. books chargebacks the provider reports and payments has not seen (`record_chargeback`), when
   the original deposit is known;
4. classifies every line: matched, pending (inside the grace period) or a break, and checks each
   payout line against the sum of the batch it pays out (one-to-many);
5. upserts the breaks by a natural key (a persisting break keeps its id), clears breaks that
   are gone, and records the completed transactions the provider never reported.

No step loops over lines in Python; the only per-row Python is step 3, per unseen chargeback.
"""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from payments import services as payments_services
from payments.models import Chargeback, Deposit, PaymentProvider, Refund, Withdrawal

from ..models import (
    Break,
    BreakTransition,
    BreakType,
    LineMatch,
    ProviderPolicy,
    ReconciliationRun,
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
    return sorted(set(SettlementLine.objects.values_list("provider_code", flat=True).distinct()))


def _match(run: ReconciliationRun, as_of: datetime, progress: Progress) -> dict:
    codes = _providers_in_scope(run)
    if not codes:
        return {"lines": 0, "providers": []}
    # Runs of one provider queue; runs of different providers proceed side by side.
    for code in codes:
        _exec("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [0x5E78, code])
    # Joins of a million rows stay in memory instead of spilling to disk, and the temporary
    # tables below get statistics from a small sample (the planner needs sizes, not detail).
    _exec("SET LOCAL work_mem = '256MB'")
    _exec("SET LOCAL default_statistics_target = 10")
    # A report loaded a moment ago is not in the statistics yet (autovacuum analyzes later).
    _exec(f"ANALYZE {LINE}")
    create_policy_table(codes)

    progress.update(force=True, phase="collecting lines")
    _create_open_lines(codes)
    total = _fetch("SELECT count(*) FROM recon_open")[0][0]
    progress.update(force=True, rows_total=total, rows_processed=0, phase="our transactions")
    _create_transactions(codes)

    progress.update(force=True, phase="pass 1: provider reference")
    _pair_on_reference()
    paired = _fetch("SELECT count(*) FROM recon_pairs")[0][0]
    progress.update(force=True, rows_processed=paired, phase="pass 2: amount and date")
    _pair_on_amount_and_date()
    chargebacks = _book_unseen_chargebacks()
    _mark_duplicates()
    _exec("ANALYZE recon_pairs")
    paired = _fetch("SELECT count(*) FROM recon_pairs")[0][0]

    progress.update(force=True, rows_processed=paired, phase="classifying")
    _create_batch_nets()
    _classify(run, as_of)
    # The break queries below join the rows just written; statistics from before them (an
    # empty table, say) would make the planner loop over them.
    _exec(f"ANALYZE {MATCH}")
    progress.update(force=True, rows_processed=total, phase="breaks")
    pending_internal = _record_breaks(run, as_of)
    summary = _summary(run, codes, total, pending_internal, chargebacks)
    _exec(
        "DROP TABLE recon_policy, recon_open, recon_tx, recon_pairs, recon_batch_net, "
        "recon_unpaired"
    )
    return summary


def create_policy_table(codes: list[str]) -> None:
    """Temporary `recon_policy`: each provider's tolerances and the span its reports cover."""
    _exec(
        "DROP TABLE IF EXISTS recon_policy, recon_open, recon_tx, recon_pairs, recon_batch_net, "
        "recon_unpaired"
    )
    _exec(
        "CREATE TEMPORARY TABLE recon_policy (provider_code text PRIMARY KEY, "
        "tolerance numeric, match_window interval, grace interval, covered_from timestamptz, "
        "covered_to timestamptz) ON COMMIT DROP"
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
    _exec(
        f"UPDATE recon_policy p SET covered_from = s.first_at, covered_to = s.last_at "
        f"FROM (SELECT provider_code, min(booked_at) AS first_at, max(booked_at) AS last_at "
        f"FROM {LINE} WHERE provider_code = ANY(%s) GROUP BY provider_code) s "
        f"WHERE s.provider_code = p.provider_code",
        [codes],
    )


def _create_open_lines(codes: list[str]) -> None:
    """The lines to (re)consider: every line without a final outcome."""
    tx_kind = " ".join(f"WHEN '{t}' THEN '{k}'" for t, k in TX_KIND.items())
    _exec(
        f"DELETE FROM {MATCH} m USING {LINE} l WHERE m.line_id = l.id "
        f"AND l.provider_code = ANY(%s) AND m.status IN (%s, %s)",
        [codes, LM.BREAK, LM.PENDING],
    )
    _exec(
        "CREATE TEMPORARY TABLE recon_open ON COMMIT DROP AS "
        "SELECT l.id, l.provider_code, l.record_type, l.provider_reference, "
        "l.payment_reference, l.gross, l.net, l.currency, l.net_currency, l.booked_at, l.batch, "
        f"(CASE l.record_type {tx_kind} END) AS tx_kind, "
        # A chargeback reversal gives back what the chargeback took: compare it negated.
        f"(CASE WHEN l.record_type = '{RT.CHARGEBACK_REVERSAL}' THEN -l.gross ELSE l.gross END)"
        " AS line_amount "
        f"FROM {LINE} l WHERE l.provider_code = ANY(%s) "
        f"AND NOT EXISTS (SELECT 1 FROM {MATCH} m WHERE m.line_id = l.id)",
        [codes],
    )
    _exec("ANALYZE recon_open")


def our_transactions_sql() -> str:
    """Our deposits, withdrawals, refunds and chargebacks of the providers in `recon_policy`
    since their reports began, amounts signed as a provider reports them (money to us
    positive). `is_completed`: the provider should report it; `is_booked`: it is in the ledger
    (a refund is taken from the player when requested, before the provider confirms it)."""
    deposit, withdrawal = Deposit._meta.db_table, Withdrawal._meta.db_table
    refund, chargeback = Refund._meta.db_table, Chargeback._meta.db_table
    provider = PaymentProvider._meta.db_table
    completed = ", ".join(f"'{s}'" for s in COMPLETED_DEPOSIT)
    scope = (
        "JOIN recon_policy pol ON pol.provider_code = p.code "
        "AND {at} >= coalesce(pol.covered_from - pol.match_window, '-infinity')"
    )
    return (
        "SELECT 'deposit'::text AS kind, d.id, p.code AS provider_code, d.provider_reference, "
        "d.reference, coalesce(d.amount_received, d.amount) AS amount, "
        f"d.currency_id AS currency, d.status IN ({completed}) AS is_completed, "
        f"d.status IN ({completed}) AS is_booked, "
        "d.status::text AS status, coalesce(d.completed_at, d.created_at) AS happened_at "
        f"FROM {deposit} d JOIN {provider} p ON p.id = d.provider_id "
        + scope.format(at="coalesce(d.completed_at, d.created_at)")
        + " UNION ALL "
        "SELECT 'withdrawal', w.id, p.code, w.provider_reference, w.reference, -w.amount, "
        f"w.currency_id, w.status = '{Withdrawal.Status.PAID}', "
        f"w.status = '{Withdrawal.Status.PAID}', w.status, "
        "coalesce(w.completed_at, w.created_at) "
        f"FROM {withdrawal} w JOIN {provider} p ON p.id = w.provider_id "
        + scope.format(at="coalesce(w.completed_at, w.created_at)")
        + " UNION ALL "
        "SELECT 'refund', r.id, p.code, r.provider_reference, r.reference, -r.amount, "
        f"d.currency_id, r.status = '{Refund.Status.SUCCEEDED}', "
        f"r.status <> '{Refund.Status.FAILED}', r.status, coalesce(r.completed_at, r.created_at) "
        f"FROM {refund} r JOIN {deposit} d ON d.id = r.deposit_id "
        f"JOIN {provider} p ON p.id = d.provider_id "
        + scope.format(at="coalesce(r.completed_at, r.created_at)")
        + " UNION ALL "
        "SELECT 'chargeback', c.id, p.code, c.provider_reference, d.reference, -c.amount, "
        "d.currency_id, true, true, c.status, c.created_at "
        f"FROM {chargeback} c JOIN {deposit} d ON d.id = c.deposit_id "
        f"JOIN {provider} p ON p.id = d.provider_id " + scope.format(at="c.created_at")
    )


def _create_transactions(codes: list[str]) -> None:
    """Our side (see `our_transactions_sql`). `is_taken`: already settled for good against
    an earlier line; a new line that pairs with it on reference is a duplicate, and nothing
    else may pair with it."""
    _exec(
        "CREATE TEMPORARY TABLE recon_tx ON COMMIT DROP AS "
        "SELECT t.*, taken.internal_id IS NOT NULL AS is_taken "
        f"FROM ({our_transactions_sql()}) t LEFT JOIN (SELECT DISTINCT internal_kind, "
        f"internal_id FROM {MATCH} WHERE internal_id IS NOT NULL) taken "
        "ON taken.internal_kind = t.kind AND taken.internal_id = t.id"
    )
    _exec("ANALYZE recon_tx")


def _pair_on_reference() -> None:
    # One line pairs with one transaction; several lines with one transaction are duplicates,
    # told apart in classification.
    _exec(
        "CREATE TEMPORARY TABLE recon_pairs ON COMMIT DROP AS "
        "SELECT DISTINCT ON (l.id) l.id AS line_id, t.kind, t.id AS tx_id, 1 AS pass "
        "FROM recon_open l JOIN recon_tx t ON t.provider_code = l.provider_code "
        "AND t.kind = l.tx_kind AND t.provider_reference = l.provider_reference "
        "WHERE l.provider_reference <> '' ORDER BY l.id, t.id"
    )
    _exec("CREATE UNIQUE INDEX ON recon_pairs (line_id)")


def _pair_on_amount_and_date() -> None:
    """What pass 1 left: nearest in time among equal amounts (within tolerance), mutual."""
    _exec(
        "CREATE TEMPORARY TABLE recon_tx_left ON COMMIT DROP AS "
        "SELECT t.* FROM recon_tx t WHERE t.is_completed AND NOT t.is_taken AND NOT EXISTS "
        "(SELECT 1 FROM recon_pairs p WHERE p.kind = t.kind AND p.tx_id = t.id)"
    )
    _exec("CREATE INDEX ON recon_tx_left (provider_code, kind, currency, amount)")
    _exec("ANALYZE recon_tx_left")
    # Both sides of what is left are small: materialize them, each line with its own bounds,
    # so the join is one index range scan per line instead of every line against every
    # transaction of the same currency.
    _exec(
        "CREATE TEMPORARY TABLE recon_lines_left ON COMMIT DROP AS "
        "SELECT l.id, l.provider_code, l.tx_kind, l.currency, l.booked_at, "
        "l.line_amount - pol.tolerance AS amount_from, l.line_amount + pol.tolerance AS amount_to, "
        "l.booked_at - pol.match_window AS time_from, l.booked_at + pol.match_window AS time_to "
        "FROM recon_open l JOIN recon_policy pol ON pol.provider_code = l.provider_code "
        "WHERE l.tx_kind IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM recon_pairs p WHERE p.line_id = l.id)"
    )
    _exec("ANALYZE recon_lines_left")
    _exec("SET LOCAL enable_hashjoin = off")
    _exec("SET LOCAL enable_mergejoin = off")
    _exec(
        "INSERT INTO recon_pairs (line_id, kind, tx_id, pass) "
        "SELECT line_id, kind, tx_id, 2 FROM ("
        "SELECT l.id AS line_id, t.kind, t.id AS tx_id, "
        "row_number() OVER (PARTITION BY l.id ORDER BY "
        "abs(extract(epoch FROM l.booked_at - t.happened_at)), t.id) AS line_rank, "
        "row_number() OVER (PARTITION BY t.kind, t.id ORDER BY "
        "abs(extract(epoch FROM l.booked_at - t.happened_at)), l.id) AS tx_rank "
        "FROM recon_lines_left l "
        "JOIN recon_tx_left t ON t.provider_code = l.provider_code AND t.kind = l.tx_kind "
        "AND t.currency = l.currency AND t.amount BETWEEN l.amount_from AND l.amount_to "
        "AND t.happened_at BETWEEN l.time_from AND l.time_to"
        ") candidates WHERE line_rank = 1 AND tx_rank = 1"
    )
    _exec("SET LOCAL enable_hashjoin = on")
    _exec("SET LOCAL enable_mergejoin = on")
    _exec("DROP TABLE recon_lines_left")
    _exec("DROP TABLE recon_tx_left")


def _mark_duplicates() -> None:
    """Lines after the first paired with the same transaction: the provider reported it
    again. Numbered on the narrow pairs table, so classification needs no window over the
    lines."""
    _exec("ALTER TABLE recon_pairs ADD COLUMN is_repeat boolean NOT NULL DEFAULT false")
    _exec(
        "UPDATE recon_pairs p SET is_repeat = true FROM ("
        "SELECT line_id, row_number() OVER (PARTITION BY kind, tx_id ORDER BY line_id) AS n "
        # Only transactions paired more than once can have a repeat: a hash aggregate finds
        # those few, so the window sorts them instead of every pair.
        "FROM recon_pairs WHERE (kind, tx_id) IN (SELECT kind, tx_id FROM recon_pairs "
        "GROUP BY kind, tx_id HAVING count(*) > 1)"
        ") numbered WHERE numbered.n > 1 AND numbered.line_id = p.line_id"
    )


def _book_unseen_chargebacks() -> int:
    """A chargeback line with no chargeback of ours, whose payment we know: book it through
    payments (idempotent by the provider's reference) and pair the line with it."""
    rows = _fetch(
        "SELECT l.id, t.id, l.provider_reference, -l.gross FROM recon_open l "
        "JOIN recon_tx t ON t.kind = 'deposit' AND t.provider_code = l.provider_code "
        "AND t.provider_reference = l.payment_reference "
        f"WHERE l.record_type = '{RT.CHARGEBACK}' AND l.provider_reference <> '' "
        "AND l.payment_reference <> '' AND t.is_completed AND l.gross < 0 "
        "AND NOT EXISTS (SELECT 1 FROM recon_pairs p WHERE p.line_id = l.id) "
        "ORDER BY l.id"
    )
    if not rows:
        return 0
    deposits = Deposit.objects.select_related("provider", "player").in_bulk(
        [deposit_id for _, deposit_id, _, _ in rows]
    )
    for line_id, deposit_id, provider_reference, amount in rows:
        chargeback = payments_services.record_chargeback(
            deposit=deposits[deposit_id],
            amount=amount,
            provider_reference=provider_reference,
            reason="reported in the provider's settlement report",
        )
        _exec(
            "INSERT INTO recon_tx (kind, id, provider_code, provider_reference, reference, "
            "amount, currency, is_completed, is_booked, status, happened_at, is_taken) "
            "SELECT 'chargeback', c.id, t.provider_code, c.provider_reference, t.reference, "
            "-c.amount, t.currency, true, true, c.status, c.created_at, false "
            f"FROM {Chargeback._meta.db_table} c, recon_tx t "
            "WHERE c.id = %s AND t.kind = 'deposit' AND t.id = %s "
            "AND NOT EXISTS (SELECT 1 FROM recon_tx x WHERE x.kind = 'chargeback' AND x.id = c.id)",
            [chargeback.pk, deposit_id],
        )
        _exec(
            "INSERT INTO recon_pairs (line_id, kind, tx_id, pass) VALUES (%s, 'chargeback', %s, 3)",
            [line_id, chargeback.pk],
        )
    return len(rows)


def _classify(run: ReconciliationRun, as_of: datetime) -> None:
    """One INSERT writes the outcome of every open line."""
    linked = ", ".join(f"'{t}'" for t in TX_KIND)
    _exec(
        f"INSERT INTO {MATCH} (line_id, status, break_type, internal_kind, internal_id, run_id) "
        "SELECT id, CASE WHEN break_type = '' THEN "
        f"(CASE WHEN is_pending THEN '{LM.PENDING}' ELSE '{LM.MATCHED}' END) "
        f"ELSE '{LM.BREAK}' END, break_type, internal_kind, internal_id, %(run)s FROM ("
        "SELECT l.id, coalesce(p.kind, CASE "
        f"WHEN l.record_type = '{RT.MERCHANT_PAYOUT}' THEN 'batch' "
        f"WHEN l.record_type = '{RT.FEE}' THEN 'fee' END, '') AS internal_kind, "
        "p.tx_id AS internal_id, "
        "(p.tx_id IS NULL AND l.booked_at > %(as_of)s - pol.grace "
        f"AND l.record_type IN ({linked})) AS is_pending, "
        "CASE "
        # A line pairing with a transaction an earlier line (or an earlier line of this
        # run) already took: the provider reported it twice.
        "WHEN p.tx_id IS NOT NULL AND (t.is_taken OR p.is_repeat) "
        f"THEN '{BreakType.DUPLICATE}' "
        "WHEN p.tx_id IS NOT NULL AND (t.currency <> l.currency OR l.net_currency <> l.currency) "
        f"THEN '{BreakType.CURRENCY_MISMATCH}' "
        f"WHEN p.tx_id IS NOT NULL AND NOT t.is_completed THEN '{BreakType.STATUS_MISMATCH}' "
        "WHEN p.tx_id IS NOT NULL AND abs(t.amount - l.line_amount) > pol.tolerance "
        f"THEN '{BreakType.AMOUNT_MISMATCH}' "
        "WHEN p.tx_id IS NOT NULL AND abs(extract(epoch FROM l.booked_at - t.happened_at)) > "
        f"extract(epoch FROM pol.grace) THEN '{BreakType.TIMING_DIFFERENCE}' "
        "WHEN p.tx_id IS NOT NULL THEN '' "
        f"WHEN l.record_type = '{RT.FEE}' THEN '' "
        f"WHEN l.record_type = '{RT.MERCHANT_PAYOUT}' THEN "
        "(CASE WHEN l.batch <> '' AND abs(-l.net - coalesce(b.batch_net, 0)) <= pol.tolerance "
        f"THEN '' ELSE '{BreakType.AMOUNT_MISMATCH}' END) "
        f"WHEN l.booked_at > %(as_of)s - pol.grace AND l.record_type IN ({linked}) THEN '' "
        f"ELSE '{BreakType.MISSING_IN_LEDGER}' END AS break_type "
        "FROM recon_open l "
        "JOIN recon_policy pol ON pol.provider_code = l.provider_code "
        "LEFT JOIN recon_pairs p ON p.line_id = l.id "
        "LEFT JOIN recon_tx t ON t.kind = p.kind AND t.id = p.tx_id "
        f"LEFT JOIN recon_batch_net b ON l.record_type = '{RT.MERCHANT_PAYOUT}' "
        "AND b.provider_code = l.provider_code AND b.batch = l.batch "
        "AND b.net_currency = l.net_currency"
        ") classified",
        {"run": run.pk, "as_of": as_of},
    )


def _create_batch_nets() -> None:
    """Temporary `recon_batch_net`: what each payout batch of the open payout lines adds up
    to, per net currency (a batch holding several currencies has one payout per currency):
    every line in it but payouts, from any import. Summed once here; classification and the
    breaks read the few rows instead of summing the batches' lines again each."""
    _exec(
        "CREATE TEMPORARY TABLE recon_batch_net ON COMMIT DROP AS "
        f"SELECT s.provider_code, s.batch, s.net_currency, sum(s.net) AS batch_net FROM {LINE} s "
        f"WHERE s.batch <> '' AND s.record_type <> '{RT.MERCHANT_PAYOUT}' "
        "AND (s.provider_code, s.batch) IN (SELECT provider_code, batch FROM recon_open "
        f"WHERE record_type = '{RT.MERCHANT_PAYOUT}') "
        "GROUP BY s.provider_code, s.batch, s.net_currency"
    )
    _exec("ANALYZE recon_batch_net")


def _record_breaks(run: ReconciliationRun, as_of: datetime) -> int:
    """Upsert this run's breaks, clear the ones that are gone; return how many of our
    completed transactions are still inside the grace period (pending, not breaks)."""
    now = timezone.now()
    params = {"run": run.pk, "now": now, "as_of": as_of}
    upsert = (
        "ON CONFLICT (key) WHERE status IN ('open', 'investigating', 'awaiting_approval') "
        "DO UPDATE SET last_run_id = EXCLUDED.last_run_id, last_seen_at = EXCLUDED.last_seen_at, "
        "our_amount = EXCLUDED.our_amount, provider_amount = EXCLUDED.provider_amount, "
        "difference = EXCLUDED.difference, detail = EXCLUDED.detail"
    )
    columns = (
        f"INSERT INTO {BREAK} (break_type, key, provider_code, currency, line_id, internal_kind, "
        "internal_id, internal_reference, our_amount, provider_amount, difference, detail, "
        "status, resolution, first_run_id, last_run_id, detected_at, last_seen_at) "
    )
    # Line breaks. Amounts are from the merchant's side; a payout's "ours" is its batch.
    _exec(
        columns + "SELECT m.break_type, m.break_type || ':line:' || l.id, l.provider_code, "
        "l.currency, l.id, m.internal_kind, m.internal_id, coalesce(t.reference, ''), "
        "CASE WHEN l.record_type = 'merchant_payout' THEN coalesce(b.batch_net, 0) "
        "WHEN t.id IS NULL THEN 0 ELSE t.amount END, "
        "CASE WHEN l.record_type = 'merchant_payout' THEN -l.net ELSE l.line_amount END, "
        # A duplicate line is money reported twice: the whole line is the difference.
        "CASE WHEN m.break_type = 'duplicate' THEN l.line_amount "
        "WHEN m.break_type IN ('status_mismatch', 'currency_mismatch') THEN l.line_amount "
        "WHEN l.record_type = 'merchant_payout' THEN -l.net - coalesce(b.batch_net, 0) "
        "ELSE l.line_amount - coalesce(t.amount, 0) END, "
        "left(concat_ws(' ', l.record_type, nullif(l.provider_reference, ''), "
        "CASE WHEN t.id IS NOT NULL THEN 'ours: ' || t.status END), 255), "
        "'open', '', %(run)s, %(run)s, %(now)s, %(now)s "
        f"FROM {MATCH} m JOIN recon_open l ON l.id = m.line_id "
        "LEFT JOIN recon_tx t ON t.kind = m.internal_kind AND t.id = m.internal_id "
        "LEFT JOIN recon_batch_net b ON l.record_type = 'merchant_payout' "
        "AND b.provider_code = l.provider_code AND b.batch = l.batch "
        "AND b.net_currency = l.net_currency "
        f"WHERE m.run_id = %(run)s AND m.status = '{LM.BREAK}' " + upsert,
        params,
    )
    # Our completed transactions no line pairs with (one anti-join of the million pairs for
    # both uses below): past the grace period before the end of what the provider's reports
    # cover they are breaks, within it pending.
    _exec(
        "CREATE TEMPORARY TABLE recon_unpaired ON COMMIT DROP AS "
        "SELECT t.*, t.happened_at <= pol.covered_to - pol.grace AS is_due "
        "FROM recon_tx t JOIN recon_policy pol ON pol.provider_code = t.provider_code "
        "WHERE t.is_completed AND NOT t.is_taken "
        "AND NOT EXISTS (SELECT 1 FROM recon_pairs p WHERE p.kind = t.kind AND p.tx_id = t.id)"
    )
    _exec(
        columns + "SELECT 'missing_at_provider', 'missing_at_provider:' || t.kind || ':' || t.id, "
        "t.provider_code, t.currency, NULL, t.kind, t.id, t.reference, t.amount, 0, -t.amount, "
        "left(t.kind || ' ' || t.status || ' ' || t.provider_reference, 255), "
        "'open', '', %(run)s, %(run)s, %(now)s, %(now)s "
        "FROM recon_unpaired t WHERE t.is_due " + upsert,
        params,
    )
    pending_internal = _fetch("SELECT count(*) FROM recon_unpaired WHERE NOT is_due")[0][0]
    # Breaks of these providers this run did not see again are gone: cleared, with the
    # audit row a transition by hand would leave. Awaiting approval stays with its approver.
    _exec(
        "WITH gone AS ("
        f"SELECT id, status FROM {BREAK} WHERE status IN ('open', 'investigating') "
        "AND last_run_id <> %(run)s AND provider_code IN (SELECT provider_code FROM recon_policy) "
        "FOR UPDATE), cleared AS ("
        f"UPDATE {BREAK} b SET status = 'resolved', resolution = 'cleared', closed_at = %(now)s "
        "FROM gone WHERE b.id = gone.id RETURNING b.id, gone.status AS before) "
        f"INSERT INTO {TRANSITION} (brk_id, from_status, to_status, actor_id, reason, created_at) "
        "SELECT id, before, 'resolved', NULL, 'not found again by run ' || %(run)s, %(now)s "
        "FROM cleared",
        params,
    )
    return pending_internal


def _summary(run, codes, total, pending_internal, chargebacks) -> dict:
    rows = _fetch(
        f"SELECT m.status, m.break_type, count(*) FROM {MATCH} m WHERE m.run_id = %s GROUP BY 1, 2",
        [run.pk],
    )
    by_status: dict[str, int] = {}
    breaks: dict[str, int] = {}
    for status, break_type, count in rows:
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
