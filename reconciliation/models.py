"""Settlement reports, their normalized lines, match results, breaks and integrity checks.

Staging lines are append-only: an import writes them once (PostgreSQL COPY) and nothing edits
them. What a matching run concludes about a line lives in `LineMatch`, one narrow row per line,
so a re-run rewrites a small table instead of the wide staging rows. The breaks a run finds
are upserted by a natural key, so a break that persists across runs keeps its id.
"""

import django_fsm as fsm
from django.conf import settings
from django.db import models
from django.db.models import Q

from wallets.models import MONEY, JournalEntry


class ProviderPolicy(models.Model):
    """Matching tolerances of one provider; a provider without a row uses the settings'
    defaults (RECONCILIATION_DEFAULT_*)."""

    provider_code = models.CharField(max_length=64, unique=True)
    amount_tolerance = models.DecimalField(
        **MONEY,
        default=0,
        help_text="Largest |provider gross − our amount| still counted as a match.",
    )
    match_window_hours = models.PositiveIntegerField(
        default=72,
        help_text="Second pass: how far apart our completion and the provider's booking may be.",
    )
    grace_period_hours = models.PositiveIntegerField(
        default=48,
        help_text="How long a completed transaction may be missing from the provider's "
        "reports before it is a break rather than pending.",
    )
    merchant_accounts = models.JSONField(
        default=list,
        blank=True,
        help_text='The provider\'s merchant account names, e.g. ["CasinoEU"]. A report whose '
        "merchant account column names another account (or another provider's) is refused.",
    )

    class Meta:
        verbose_name_plural = "provider policies"
        ordering = ["provider_code"]

    def __str__(self):
        return self.provider_code


class SettlementImport(models.Model):
    class Layout(models.TextChoices):
        ADYEN = "adyen_settlement_details", "Adyen settlement details report"
        STRIPE = "stripe_itemized_payout", "Stripe itemized payout reconciliation"
        SANDBOX = "sandbox_settlement", "Sandbox provider settlement file"

    class Status(models.TextChoices):
        RECEIVED = "received"
        LOADING = "loading"
        LOADED = "loaded"
        REJECTED = "rejected"

    layout = models.CharField(max_length=32, choices=Layout.choices)
    provider_code = models.CharField(
        max_length=64, help_text="Our payment provider whose report this is."
    )
    file = models.FileField(upload_to="settlements/%Y/%m/")
    file_name = models.CharField(max_length=255)
    # sha256 of the file. With provider and layout it identifies an import (see Meta).
    checksum = models.CharField(max_length=64, db_index=True)
    size = models.PositiveBigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    rows_total = models.PositiveIntegerField(default=0)
    rows_processed = models.PositiveIntegerField(default=0)
    lines_loaded = models.PositiveIntegerField(default=0)
    lines_already_known = models.PositiveIntegerField(
        default=0, help_text="Lines re-sent by the provider that an earlier import holds."
    )
    summary_lines_skipped = models.PositiveIntegerField(
        default=0, help_text="Trailing totals or summary lines the layout recognised and skipped."
    )
    payouts_derived = models.PositiveIntegerField(
        default=0,
        help_text="Payout lines derived from a report that lists a payout only through the "
        "lines it settles (Stripe's automatic_payout_id); their line number is 0.",
    )
    errors = models.JSONField(
        default=list, blank=True, help_text="[{line, column, message}] when rejected."
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    loaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The same bytes are the same report only for the same provider read with the same
            # layout; a refused import does not hold them (the file may be loaded again once
            # the layout, the policy or our currencies are right).
            models.UniqueConstraint(
                fields=["provider_code", "layout", "checksum"],
                condition=~Q(status="rejected"),
                name="one_live_import_per_file",
            )
        ]

    def __str__(self):
        return f"{self.file_name} ({self.provider_code})"


class ReportFormat(models.Model):
    """How one provider's reports of one layout are written, when not as the provider's
    default export (comma-separated UTF-8 with a decimal point): Adyen lets a merchant pick
    a semicolon delimiter and decimal commas; spreadsheets add thousands separators and
    save in Windows-1252. A provider and layout without a row read the default."""

    class Delimiter(models.TextChoices):
        COMMA = ",", "Comma (,)"
        SEMICOLON = ";", "Semicolon (;)"
        TAB = "\t", "Tab"
        PIPE = "|", "Pipe (|)"

    class DecimalSeparator(models.TextChoices):
        POINT = ".", "Point (1234.56)"
        COMMA = ",", "Comma (1234,56)"

    class ThousandsSeparator(models.TextChoices):
        NONE = "", "None (1234.56)"
        COMMA = ",", "Comma (1,234.56)"
        POINT = ".", "Point (1.234,56)"
        SPACE = " ", "Space (1 234,56; also no-break spaces)"
        APOSTROPHE = "'", "Apostrophe (1'234.56)"

    class Encoding(models.TextChoices):
        UTF8 = "utf-8", "UTF-8"
        WINDOWS_1252 = "windows-1252", "Windows-1252"
        LATIN1 = "iso-8859-1", "ISO-8859-1 (Latin-1)"
        LATIN9 = "iso-8859-15", "ISO-8859-15 (Latin-9)"

    provider_code = models.CharField(max_length=64)
    layout = models.CharField(max_length=32, choices=SettlementImport.Layout.choices)
    delimiter = models.CharField(max_length=2, choices=Delimiter.choices, default=",")
    decimal_separator = models.CharField(
        max_length=1, choices=DecimalSeparator.choices, default="."
    )
    thousands_separator = models.CharField(
        max_length=1, choices=ThousandsSeparator.choices, default="", blank=True
    )
    encoding = models.CharField(max_length=16, choices=Encoding.choices, default="utf-8")

    class Meta:
        ordering = ["provider_code", "layout"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider_code", "layout"], name="one_report_format_per_layout"
            ),
            models.CheckConstraint(
                condition=~Q(decimal_separator=models.F("thousands_separator")),
                name="report_format_separators_differ",
            ),
        ]

    def __str__(self):
        return f"{self.provider_code} {self.layout}"


class SettlementLine(models.Model):
    """One line of a provider's report in the normalized form every layout maps to.

    Amounts are from the merchant's side: money the provider owes us is positive (a settled
    payment), money that left us negative (refund, chargeback, payout to a player, payout to
    our bank). `fee` is what the provider kept (positive is a cost); `net = gross - fee`.
    """

    class RecordType(models.TextChoices):
        PAYMENT = "payment"
        REFUND = "refund"
        CHARGEBACK = "chargeback"
        CHARGEBACK_REVERSAL = "chargeback_reversal"
        PLAYER_PAYOUT = "player_payout", "Payout to a player (withdrawal)"
        FEE = "fee"
        MERCHANT_PAYOUT = "merchant_payout", "Payout to the operator's bank"
        OTHER = "other"

    # No database constraint on this key nor on LineMatch's: a million-line load would pay a
    # foreign-key check per row (seconds). Lines are append-only and imports never deleted.
    # Nor an index: every index costs a second per million lines loaded, and lines are read
    # by provider, not by import.
    settlement_import = models.ForeignKey(
        SettlementImport,
        on_delete=models.PROTECT,
        related_name="lines",
        db_constraint=False,
        db_index=False,
    )
    provider_code = models.CharField(max_length=64)
    line_number = models.PositiveIntegerField()
    record_type = models.CharField(max_length=24, choices=RecordType.choices)
    provider_type = models.CharField(max_length=64, help_text="The record type as the file says.")
    provider_reference = models.CharField(max_length=128, blank=True)
    payment_reference = models.CharField(
        max_length=128, blank=True, help_text="The original payment's provider reference."
    )
    merchant_reference = models.CharField(max_length=128, blank=True)
    gross = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY)
    net = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=8)
    net_currency = models.CharField(max_length=8)
    booked_at = models.DateTimeField()
    batch = models.CharField(max_length=64, blank=True)
    # With provider and booking time, the key of a line the provider sends again
    # (services.importing.FINGERPRINT says what it hashes).
    line_hash = models.BigIntegerField()

    class Meta:
        ordering = ["id"]
        constraints = [
            # Booking time leads after the provider so that a report, which lists its lines
            # in time order, fills the index at its end instead of at random places.
            models.UniqueConstraint(
                fields=["provider_code", "booked_at", "line_hash"],
                name="settlement_line_once_per_provider",
            )
        ]
        # Matching reads lines by provider in bulk; only payout batches are looked up.
        indexes = [models.Index(fields=["provider_code", "batch"])]

    def __str__(self):
        return f"{self.provider_code} {self.record_type} {self.provider_reference}"


class ReconciliationRun(models.Model):
    """One matching or settlement run, with its progress for the admin."""

    class Kind(models.TextChoices):
        MATCH = "match"
        SETTLE = "settle"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    provider_code = models.CharField(max_length=64, blank=True, help_text="Blank: every provider.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    phase = models.CharField(max_length=64, blank=True)
    rows_total = models.PositiveIntegerField(default=0)
    rows_processed = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} run #{self.pk} ({self.provider_code or 'all'})"


class BreakType(models.TextChoices):
    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_AT_PROVIDER = "missing_at_provider"
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    STATUS_MISMATCH = "status_mismatch"
    DUPLICATE = "duplicate"
    TIMING_DIFFERENCE = "timing_difference"


class LineMatch(models.Model):
    """What the latest matching run concluded about one settlement line."""

    class Status(models.TextChoices):
        MATCHED = "matched"
        PENDING = "pending"
        BREAK = "break"
        RESOLVED = "resolved", "Resolved by an operator"

    line = models.OneToOneField(
        SettlementLine,
        primary_key=True,
        on_delete=models.PROTECT,
        related_name="match",
        db_constraint=False,
    )
    status = models.CharField(max_length=12, choices=Status.choices)
    break_type = models.CharField(max_length=24, choices=BreakType.choices, blank=True)
    # deposit / withdrawal / refund / chargeback (payments ids), or batch for payout lines.
    internal_kind = models.CharField(max_length=16, blank=True)
    internal_id = models.BigIntegerField(null=True, blank=True)
    run = models.ForeignKey(
        ReconciliationRun,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )

    # No index on run: outcomes are never read by run.
    class Meta:
        indexes = [
            # A run re-evaluates only the lines without a final outcome: this small index
            # (breaks and pending lines only) finds them without reading every outcome.
            models.Index(
                fields=["line"],
                condition=Q(status__in=["break", "pending"]),
                name="line_match_open",
            ),
            # Whether one of our transactions is already taken by a line: probed for the
            # transactions a run reads (recent ones, and those a late line names), instead of
            # a hash join over every outcome ever written.
            models.Index(
                fields=["internal_id", "internal_kind"],
                condition=Q(internal_id__isnull=False),
                name="line_match_transaction",
            ),
        ]

    def __str__(self):
        return f"line {self.line_id}: {self.status} {self.break_type}"


class MatchingWatermark(models.Model):
    """Where a provider's open items begin, so that a matching run reads only those.

    `lines_through`: every line of the provider with an id up to it has an outcome (lines of
    one provider are written by loads that queue on the provider's lock, and matching takes
    that lock too, so a later line always has a higher id). A run reads the lines above it
    and the lines whose outcome is still a break or pending.

    `open_from`: every completed transaction of ours with this provider that happened before
    it is settled for matching: taken by a line, or past its grace period with a
    `missing_at_provider` break. A run reads our transactions from here on, plus those its
    open lines were paired with, those with an active break, and those a line names by
    reference (payments' index on the provider reference). Null until the first run: that
    run reads from the provider's first report, as before watermarks existed."""

    provider_code = models.CharField(max_length=64, unique=True)
    lines_through = models.BigIntegerField(default=0)
    open_from = models.DateTimeField(null=True, blank=True)
    last_run = models.ForeignKey(
        ReconciliationRun, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider_code"]

    def __str__(self):
        return f"{self.provider_code}: lines > {self.lines_through}, ours from {self.open_from}"


class DailyLineTotal(models.Model):
    """What one provider's lines of one day (UTC, by booking time) add up to, per net
    currency: the integrity job sums these rows instead of every line. A load marks the days
    its lines fall on (`DirtyLineDay`); the job re-sums only those days from the lines."""

    provider_code = models.CharField(max_length=64)
    day = models.DateField()
    currency = models.CharField(max_length=8)
    lines = models.PositiveIntegerField(default=0)
    # Σ net of every line, payouts included (money the provider still holds for us).
    net = models.DecimalField(**MONEY, default=0)
    # Minus the Σ net of the payout lines: what the provider says it paid to our bank.
    paid_out = models.DecimalField(**MONEY, default=0)
    summed_at = models.DateTimeField()

    class Meta:
        ordering = ["provider_code", "day", "currency"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider_code", "day", "currency"], name="one_total_per_provider_day"
            )
        ]

    def __str__(self):
        return f"{self.provider_code} {self.day} {self.currency}: {self.net}"


class DirtyLineDay(models.Model):
    """A day a load added lines to, whose `DailyLineTotal` rows the integrity job re-sums."""

    provider_code = models.CharField(max_length=64)
    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider_code", "day"], name="one_dirty_mark_per_day")
        ]

    def __str__(self):
        return f"{self.provider_code} {self.day}"


class SettlementPosting(models.Model):
    """Which ledger entry booked a line's fee or payout: a line is booked once."""

    class Kind(models.TextChoices):
        FEE = "fee"
        PAYOUT = "payout"

    line = models.OneToOneField(
        SettlementLine, primary_key=True, on_delete=models.PROTECT, related_name="posting"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="+")

    def __str__(self):
        return f"line {self.line_id} → entry {self.entry_id}"


class Break(fsm.FSMModelMixin, models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        INVESTIGATING = "investigating"
        AWAITING_APPROVAL = "awaiting_approval", "Write-off awaiting approval"
        RESOLVED = "resolved"
        WRITTEN_OFF = "written_off"

    ACTIVE = (Status.OPEN, Status.INVESTIGATING, Status.AWAITING_APPROVAL)

    class Resolution(models.TextChoices):
        FIXED_BY_ADJUSTMENT = "fixed_by_adjustment"
        PROVIDER_CORRECTED = "provider_corrected"
        ACCEPTED = "accepted"
        CLEARED = "cleared", "Cleared by a later run"
        SUPERSEDED = "superseded", "Repeated an earlier break of the same identity"

    # Resolutions that leave a break's identity free: a run cleared it (no one decided
    # anything, no money moved), or it was a repeat of an earlier break (migration 0006).
    # Every other break — active, or closed by a person — holds its identity for good.
    IDENTITY_RELEASED = (Resolution.CLEARED, Resolution.SUPERSEDED)

    break_type = models.CharField(max_length=24, choices=BreakType.choices)
    # type + subject (a line, or one of our transactions): the identity across runs.
    key = models.CharField(max_length=200)
    provider_code = models.CharField(max_length=64)
    currency = models.CharField(max_length=8)
    line = models.ForeignKey(
        SettlementLine, null=True, blank=True, on_delete=models.PROTECT, related_name="breaks"
    )
    internal_kind = models.CharField(max_length=16, blank=True)
    internal_id = models.BigIntegerField(null=True, blank=True)
    internal_reference = models.CharField(max_length=128, blank=True)
    our_amount = models.DecimalField(**MONEY, null=True, blank=True)
    provider_amount = models.DecimalField(**MONEY, null=True, blank=True)
    # provider - ours, from the merchant's side; what a write-off books.
    difference = models.DecimalField(**MONEY, default=0)
    detail = models.CharField(max_length=255, blank=True)
    status = fsm.FSMField(default=Status.OPEN, choices=Status.choices, protected=True)
    resolution = models.CharField(max_length=24, choices=Resolution.choices, blank=True)
    first_run = models.ForeignKey(ReconciliationRun, on_delete=models.PROTECT, related_name="+")
    last_run = models.ForeignKey(ReconciliationRun, on_delete=models.PROTECT, related_name="+")
    detected_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    write_off_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    entry = models.ForeignKey(
        JournalEntry,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The ledger entry that resolved it, if money moved.",
    )

    class Meta:
        # Total: every break of a run shares its detection time, and a page boundary inside
        # equal sort keys would drop or repeat rows.
        ordering = ["-detected_at", "-id"]
        permissions = [("approve_write_off", "Can approve write-offs above the threshold")]
        constraints = [
            # One break per identity (type + subject) that is active or was closed by a person:
            # a later run cannot open it again under a new id, so its money is never booked a
            # second time. Matching upserts against this index.
            models.UniqueConstraint(
                fields=["key"],
                condition=~Q(resolution__in=["cleared", "superseded"]),
                name="one_break_per_identity",
            ),
            # A ledger entry settles at most one break.
            models.UniqueConstraint(fields=["entry"], name="one_break_per_entry"),
        ]
        indexes = [models.Index(fields=["status", "provider_code"])]

    def __str__(self):
        return f"break #{self.pk} {self.break_type} ({self.status})"

    @fsm.transition(field=status, source=Status.OPEN, target=Status.INVESTIGATING)
    def investigate(self, *, assignee):
        self.assigned_to = assignee

    @fsm.transition(
        field=status, source=[Status.OPEN, Status.INVESTIGATING], target=Status.RESOLVED
    )
    def resolve(self, *, resolution, closer, entry=None):
        self.resolution = resolution
        self.closed_by = closer
        self.entry = entry

    @fsm.transition(
        field=status, source=[Status.OPEN, Status.INVESTIGATING], target=Status.AWAITING_APPROVAL
    )
    def request_write_off(self, *, requester):
        self.write_off_requested_by = requester

    @fsm.transition(
        field=status,
        source=[Status.OPEN, Status.INVESTIGATING, Status.AWAITING_APPROVAL],
        target=Status.WRITTEN_OFF,
    )
    def write_off(self, *, closer, entry):
        self.closed_by = closer
        self.entry = entry

    @fsm.transition(field=status, source=Status.AWAITING_APPROVAL, target=Status.INVESTIGATING)
    def reject_write_off(self):
        self.write_off_requested_by = None


class BreakTransition(models.Model):
    """Audit trail: every move of a break, by whom and why (`actor` null: a matching run)."""

    brk = models.ForeignKey(Break, on_delete=models.PROTECT, related_name="transitions")
    from_status = models.CharField(max_length=24)
    to_status = models.CharField(max_length=24)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"break {self.brk_id}: {self.from_status} → {self.to_status}"


class IntegrityRun(models.Model):
    """One run of the ledger integrity job."""

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    is_clean = models.BooleanField(default=False)
    ledger_problems = models.JSONField(default=list, blank=True)
    clearing_comparison = models.JSONField(
        default=list,
        blank=True,
        help_text="Per provider and currency: ledger and provider in-transit amounts.",
    )
    days_resummed = models.PositiveIntegerField(
        default=0, help_text="Provider days whose line totals this run summed again."
    )

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"integrity run #{self.pk} ({'clean' if self.is_clean else 'problems'})"


class IntegrityAlert(models.Model):
    run = models.ForeignKey(IntegrityRun, on_delete=models.PROTECT, related_name="alerts")
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.message[:80]
