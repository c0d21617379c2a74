from django.conf import settings
from django.db import models


class AmlRule(models.Model):
    """One monitoring rule: which check (`kind`), its parameters, and the score of a hit.

    Officers tune rules in the admin (enabled, thresholds, windows, score); the checks
    themselves are code in `compliance.rules`, one per kind, and validate their parameters.
    """

    class Kind(models.TextChoices):
        LARGE_TRANSACTION = "large_transaction", "Single deposit or withdrawal ≥ threshold"
        CUMULATIVE_DEPOSITS = "cumulative_deposits", "Deposits in a window ≥ threshold"
        STRUCTURING = "structuring", "Several deposits just below the threshold"
        MINIMAL_PLAY = "minimal_play", "Withdrawal after deposits with little play"
        DEPOSIT_VELOCITY = "deposit_velocity", "More than N deposits in M minutes"
        RAPID_CYCLE = "rapid_cycle", "Deposit quickly followed by a withdrawal"
        SHARED_INSTRUMENT = "shared_instrument", "Payment instrument used by several players"
        MANY_INSTRUMENTS = "many_instruments", "Many payment instruments in a window"
        HIGH_RISK_JURISDICTION = "high_risk_jurisdiction", "Player in a high-risk jurisdiction"
        DORMANT_REACTIVATION = "dormant_reactivation", "Dormant account suddenly active"
        NET_DEPOSITS = "net_deposits", "Net deposits over a window (financial vulnerability)"
        LOCATION_MISMATCH = "location_mismatch", "IP country differs from residence"
        SANCTIONS_MATCH = "sanctions_match", "Sanctions list match"

    # Kinds raised by a payment-time check or by screening, not by ledger monitoring.
    EVENT_KINDS = (Kind.LOCATION_MISMATCH, Kind.SANCTIONS_MATCH)

    class Category(models.TextChoices):
        AML = "aml", "AML"
        RESPONSIBLE_GAMBLING = "responsible_gambling"
        LOCATION = "location"
        SANCTIONS = "sanctions"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    category = models.CharField(max_length=24, choices=Category.choices, default=Category.AML)
    is_enabled = models.BooleanField(default=True)
    parameters = models.JSONField(default=dict, blank=True)
    score = models.PositiveSmallIntegerField(default=10, help_text="Added to the case's risk.")
    description = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        verbose_name = "AML rule"

    def __str__(self):
        return self.name


class Alert(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        CLEARED = "cleared", "Cleared (false positive)"
        CONFIRMED = "confirmed"

    rule = models.ForeignKey(AmlRule, on_delete=models.PROTECT, related_name="alerts")
    player = models.ForeignKey("wallets.Player", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(
        "compliance.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="alerts"
    )
    score = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    # What makes this hit the same hit next time (an entry id, an instrument, a window start):
    # re-running a rule never raises the same alert twice.
    dedup_key = models.CharField(max_length=200)
    details = models.JSONField(default=dict, blank=True)
    entries = models.ManyToManyField("wallets.JournalEntry", blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "player", "dedup_key"], name="one_alert_per_rule_player_key"
            )
        ]
        indexes = [models.Index(fields=["player", "rule", "created_at"])]
        permissions = [("resolve_alert", "Can clear or confirm an alert")]

    def __str__(self):
        return f"Alert #{self.pk} {self.rule.code} on {self.player_id}"


class InstrumentUse(models.Model):
    """Which player used which payment instrument in which ledger entry.

    Compliance may not import payments, so the instrument is read from the entry's
    `metadata["instrument_fingerprint"]` (a card fingerprint, IBAN hash, wallet id or crypto
    address that payments writes) and indexed here for the cross-player rules.
    """

    fingerprint = models.CharField(max_length=200)
    instrument_type = models.CharField(max_length=32, blank=True)
    player = models.ForeignKey("wallets.Player", on_delete=models.PROTECT, related_name="+")
    entry = models.OneToOneField("wallets.JournalEntry", on_delete=models.PROTECT, related_name="+")
    used_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["fingerprint", "player"]),
            models.Index(fields=["player", "used_at"]),
        ]

    def __str__(self):
        return f"{self.fingerprint} by {self.player_id}"


class MonitoringCursor(models.Model):
    """How far the batch sweep has read the ledger (entry id), per named sweep."""

    name = models.CharField(max_length=64, unique=True)
    last_entry_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.name} at entry {self.last_entry_id}"


class RiskAssessment(models.Model):
    class Level(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"

    player = models.OneToOneField(
        "wallets.Player", on_delete=models.PROTECT, related_name="risk_assessment"
    )
    score = models.PositiveIntegerField(default=0)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.LOW)
    reasons = models.JSONField(default=list, blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["level", "score"])]

    def __str__(self):
        return f"{self.player} risk {self.level} ({self.score})"
