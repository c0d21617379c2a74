"""State of the simulated provider servers (demo and tests only)."""

from django.db import models

from wallets.models import MONEY


class SandboxPayment(models.Model):
    """One payment, payout or refund as a simulated provider sees it. `status` is in that
    provider's own vocabulary (e.g. ACSC for open banking, Settled for crypto)."""

    class Kind(models.TextChoices):
        PAYMENT = "payment"
        PAYOUT = "payout"
        REFUND = "refund"

    provider_code = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    sandbox_id = models.CharField(max_length=64, unique=True)
    merchant_reference = models.CharField(max_length=64, db_index=True)
    amount = models.DecimalField(**MONEY)
    amount_paid = models.DecimalField(**MONEY, null=True, blank=True)
    currency = models.CharField(max_length=8)
    status = models.CharField(max_length=32)
    scenario = models.CharField(max_length=32)
    notify_url = models.URLField(max_length=500)
    return_url = models.URLField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider_code", "kind", "merchant_reference"],
                name="sandbox_one_object_per_merchant_reference",
            )
        ]

    def __str__(self):
        return self.sandbox_id
