"""Bonus money: granted into the player's bonus account, converted to cash once wagered.

At most one bonus is active per player and currency, so the player's bonus account holds
exactly the active bonus's remaining money; conversion and forfeit empty it.
"""

import django_fsm as fsm
from django.conf import settings
from django.db import models
from django.db.models import Q

from .ledger import MONEY, Currency, JournalEntry, Player


class Bonus(fsm.FSMModelMixin, models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        CONVERTED = "converted", "Converted to cash"
        FORFEITED = "forfeited"

    class ForfeitCause(models.TextChoices):
        EXPIRED = "expired"
        CANCELLED = "cancelled", "Cancelled by an operator"
        WITHDRAWAL = "withdrawal", "Withdrawal requested"

    player = models.ForeignKey(Player, on_delete=models.PROTECT, related_name="bonuses")
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(**MONEY)
    wagering_multiplier = models.DecimalField(
        max_digits=6, decimal_places=2, help_text="As requested, e.g. 35 for 35x."
    )
    applied_multiplier = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        help_text="After the cap of the player's jurisdiction (BONUS_WAGERING_CAPS).",
    )
    wagering_required = models.DecimalField(**MONEY)
    wagered = models.DecimalField(**MONEY, default=0)
    max_bet = models.DecimalField(
        **MONEY, null=True, blank=True, help_text="Largest bet allowed while the bonus is active."
    )
    expires_at = models.DateTimeField()
    status = fsm.FSMField(default=Status.ACTIVE, choices=Status.choices, protected=True)
    forfeit_cause = models.CharField(max_length=12, choices=ForfeitCause.choices, blank=True)
    converted_amount = models.DecimalField(**MONEY, null=True, blank=True)
    forfeited_amount = models.DecimalField(**MONEY, null=True, blank=True)
    grant_key = models.CharField(max_length=200, unique=True, help_text="Idempotency key.")
    grant_entry = models.OneToOneField(
        JournalEntry, on_delete=models.PROTECT, related_name="+", null=True, editable=False
    )
    closing_entry = models.OneToOneField(
        JournalEntry, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    reason = models.TextField(blank=True, help_text="Why it was granted.")
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    close_reason = models.TextField(blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "bonuses"
        constraints = [
            models.UniqueConstraint(
                fields=["player", "currency"],
                condition=Q(status="active"),
                name="one_active_bonus_per_player_and_currency",
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0) & Q(wagered__gte=0) & Q(wagering_required__gte=0),
                name="bonus_amounts_sane",
            ),
        ]
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self):
        return f"bonus #{self.pk} {self.amount} {self.currency_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def wagering_left(self):
        return max(self.wagering_required - self.wagered, 0)

    @fsm.transition(field=status, source=Status.ACTIVE, target=Status.CONVERTED)
    def convert(self, *, amount, entry, closed_at):
        self.converted_amount = amount
        self.closing_entry = entry
        self.closed_at = closed_at

    @fsm.transition(field=status, source=Status.ACTIVE, target=Status.FORFEITED)
    def forfeit(self, *, cause, amount, entry, closed_at, actor=None, reason=""):
        self.forfeit_cause = cause
        self.forfeited_amount = amount
        self.closing_entry = entry
        self.closed_at = closed_at
        self.closed_by = actor
        self.close_reason = reason
