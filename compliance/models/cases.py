import django_fsm as fsm
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Case(fsm.FSMModelMixin, models.Model):
    """A player's compliance case: the alerts raised on them, worked by an officer.

    One case at a time per player is not closed; new alerts join it.
    """

    class Status(models.TextChoices):
        OPEN = "open"
        INVESTIGATING = "investigating"
        ESCALATED = "escalated"
        CLOSED = "closed"

    class Outcome(models.TextChoices):
        FALSE_POSITIVE = "false_positive"
        RISK_CONFIRMED = "risk_confirmed"
        SAR_FILED = "sar_filed", "SAR filed"

    player = models.ForeignKey("wallets.Player", on_delete=models.PROTECT, related_name="+")
    status = fsm.FSMField(default=Status.OPEN, choices=Status.choices, protected=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    risk_score = models.PositiveIntegerField(default=0, db_index=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    opened_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closing_note = models.TextField(blank=True)

    class Meta:
        # The queue: riskiest first, then oldest.
        ordering = ["-risk_score", "opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["player"], condition=~Q(status="closed"), name="one_open_case_per_player"
            ),
            models.CheckConstraint(
                condition=Q(status="closed", outcome__gt="")
                | (~Q(status="closed") & Q(outcome="")),
                name="closed_case_has_outcome",
            ),
        ]
        permissions = [
            ("work_case", "Can investigate, escalate, annotate and act on compliance cases"),
            ("close_case", "Can close a compliance case"),
            ("file_sar", "Can record a suspicious activity report"),
        ]

    def __str__(self):
        return f"Case #{self.pk} ({self.status}) {self.player}"

    @fsm.transition(field=status, source=Status.OPEN, target=Status.INVESTIGATING)
    def start_investigation(self):
        pass

    @fsm.transition(
        field=status, source=[Status.OPEN, Status.INVESTIGATING], target=Status.ESCALATED
    )
    def escalate(self):
        pass

    @fsm.transition(
        field=status,
        source=[Status.OPEN, Status.INVESTIGATING, Status.ESCALATED],
        target=Status.CLOSED,
    )
    def close(self, *, outcome, actor, note):
        self.outcome = outcome
        self.closed_by = actor
        self.closing_note = note
        self.closed_at = timezone.now()


class CaseNote(models.Model):
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"Note on case {self.case_id} by {self.author}"


class SuspiciousActivityReport(models.Model):
    """The record of a SAR filed with the financial intelligence unit."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="sars")
    reference = models.CharField(max_length=100, unique=True, help_text="The FIU's reference.")
    filed_on = models.DateField()
    narrative = models.TextField()
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "suspicious activity report"

    def __str__(self):
        return f"SAR {self.reference}"


class WithdrawalBlock(models.Model):
    """While active (not lifted), `assess_withdrawal` refuses the player's withdrawals."""

    player = models.ForeignKey("wallets.Player", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(
        Case, null=True, blank=True, on_delete=models.PROTECT, related_name="withdrawal_blocks"
    )
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    lift_reason = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["player"], condition=Q(lifted_at__isnull=True), name="active_block"
            )
        ]

    def __str__(self):
        return f"Withdrawal block on {self.player_id}"


class DocumentRequest(models.Model):
    """Documents an officer asked the player for (shown to the player in the KYC API)."""

    player = models.ForeignKey("wallets.Player", on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(
        Case, null=True, blank=True, on_delete=models.PROTECT, related_name="document_requests"
    )
    document_types = models.JSONField(default=list)
    message = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"Documents {', '.join(self.document_types)} from {self.player_id}"
