from django.db import models
from django.db.models import Q

from wallets.models import MONEY


class DepositLimit(models.Model):
    """A player's own deposit limit over a rolling window, in one currency.

    A lower limit applies at once; a higher one (or removing the limit) only after the
    cooling-off period: `pending_amount` / `pending_removal` wait until `pending_from`.
    """

    class Period(models.TextChoices):
        DAY = "day"
        WEEK = "week"
        MONTH = "month"

    WINDOW_DAYS = {Period.DAY: 1, Period.WEEK: 7, Period.MONTH: 30}

    player = models.ForeignKey(
        "wallets.Player", on_delete=models.PROTECT, related_name="deposit_limits"
    )
    currency = models.ForeignKey("wallets.Currency", on_delete=models.PROTECT, related_name="+")
    period = models.CharField(max_length=8, choices=Period.choices)
    amount = models.DecimalField(**MONEY, null=True, blank=True, help_text="Null: no limit.")
    pending_amount = models.DecimalField(**MONEY, null=True, blank=True)
    pending_removal = models.BooleanField(default=False)
    pending_from = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["player", "currency", "period"], name="one_deposit_limit_per_period"
            ),
            models.CheckConstraint(
                condition=Q(amount__isnull=True) | Q(amount__gt=0), name="deposit_limit_positive"
            ),
        ]

    def __str__(self):
        return f"{self.player} {self.period} {self.amount} {self.currency_id}"

    def effective_amount(self, now):
        """The limit in force at `now` (None: no limit)."""
        if self.pending_from is not None and self.pending_from <= now:
            return None if self.pending_removal else self.pending_amount
        return self.amount


class SelfExclusion(models.Model):
    """A time-out (short break) or self-exclusion (months, years or permanent).

    Neither can be lifted early: that is the point of them. Withdrawals stay allowed so the
    player can take their balance out.
    """

    class Kind(models.TextChoices):
        TIMEOUT = "timeout", "Time-out"
        SELF_EXCLUSION = "self_exclusion"

    player = models.ForeignKey(
        "wallets.Player", on_delete=models.PROTECT, related_name="self_exclusions"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Null: permanent.")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at"]
        indexes = [models.Index(fields=["player", "ends_at"])]

    def __str__(self):
        until = self.ends_at.date() if self.ends_at else "permanent"
        return f"{self.player} {self.kind} until {until}"

    @property
    def is_permanent(self) -> bool:
        return self.ends_at is None


class PaymentDecision(models.Model):
    """Every payment-time decision with its inputs and reasons (the regulator asks why)."""

    class Action(models.TextChoices):
        DEPOSIT = "deposit"
        WITHDRAWAL = "withdrawal"
        BET = "bet"

    class Outcome(models.TextChoices):
        ALLOW = "allow"
        REFUSE = "refuse"
        REVIEW = "review"

    player = models.ForeignKey("wallets.Player", on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=16, choices=Action.choices)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    reasons = models.JSONField(default=list, blank=True)
    inputs = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["player", "action", "created_at"])]

    def __str__(self):
        return f"{self.action} {self.outcome} for {self.player_id}"
