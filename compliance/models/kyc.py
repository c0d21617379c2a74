import uuid
from pathlib import Path

import django_fsm as fsm
from django.conf import settings
from django.db import models
from django.utils import timezone


class KycLevel(models.TextChoices):
    """Ordered: each level unlocks more (see `compliance.services.assess_deposit`)."""

    NONE = "none"
    BASIC = "basic", "Basic (database check)"
    VERIFIED = "verified", "Verified (ID document + proof of address)"
    ENHANCED = "enhanced", "Enhanced (source of funds)"

    @classmethod
    def rank(cls, level: str) -> int:
        return list(cls.values).index(level)


class KycProfile(models.Model):
    player = models.OneToOneField(
        "wallets.Player", on_delete=models.PROTECT, related_name="kyc_profile"
    )
    level = models.CharField(max_length=16, choices=KycLevel.choices, default=KycLevel.NONE)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "KYC profile"
        permissions = [("change_kyc_level", "Can set a player's KYC level by hand")]

    def __str__(self):
        return f"{self.player} KYC {self.level}"


class KycLevelChange(models.Model):
    """Audit of every level change: approvals, manual changes, expiry downgrades."""

    player = models.ForeignKey("wallets.Player", on_delete=models.PROTECT, related_name="+")
    from_level = models.CharField(max_length=16, choices=KycLevel.choices)
    to_level = models.CharField(max_length=16, choices=KycLevel.choices)
    reason = models.TextField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.player_id}: {self.from_level} → {self.to_level}"


class VerificationRequest(fsm.FSMModelMixin, models.Model):
    """A player's request to reach a KYC level, with documents an officer reviews."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted"
        IN_REVIEW = "in_review"
        APPROVED = "approved"
        REJECTED = "rejected"
        RESUBMISSION_REQUESTED = "resubmission_requested"

    player = models.ForeignKey(
        "wallets.Player", on_delete=models.PROTECT, related_name="verification_requests"
    )
    target_level = models.CharField(
        max_length=16,
        choices=[c for c in KycLevel.choices if c[0] != KycLevel.NONE],
    )
    status = fsm.FSMField(default=Status.SUBMITTED, choices=Status.choices, protected=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_reason = models.TextField(blank=True)
    submitted_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["submitted_at"]
        permissions = [("review_verification", "Can review KYC verification requests")]

    def __str__(self):
        return f"#{self.pk} {self.player} → {self.target_level} ({self.status})"

    @fsm.transition(field=status, source=Status.SUBMITTED, target=Status.IN_REVIEW)
    def start_review(self, *, reviewer):
        self.reviewer = reviewer

    @fsm.transition(field=status, source=Status.IN_REVIEW, target=Status.APPROVED)
    def approve(self, *, reviewer, reason):
        self._decide(reviewer, reason)

    @fsm.transition(field=status, source=Status.IN_REVIEW, target=Status.REJECTED)
    def reject(self, *, reviewer, reason):
        self._decide(reviewer, reason)

    @fsm.transition(field=status, source=Status.IN_REVIEW, target=Status.RESUBMISSION_REQUESTED)
    def request_resubmission(self, *, reviewer, reason):
        self._decide(reviewer, reason)

    @fsm.transition(field=status, source=Status.RESUBMISSION_REQUESTED, target=Status.SUBMITTED)
    def resubmit(self):
        self.decided_at = None

    def _decide(self, reviewer, reason):
        self.reviewer = reviewer
        self.decision_reason = reason
        self.decided_at = timezone.now()


def _document_path(document, filename):
    # Never the player's original filename in the path: it may carry personal data.
    return f"kyc/{document.player_id}/{uuid.uuid4().hex}{Path(filename).suffix.lower()[:10]}"


class KycDocument(models.Model):
    class Type(models.TextChoices):
        ID_DOCUMENT = "id_document", "ID document"
        PROOF_OF_ADDRESS = "proof_of_address"
        SOURCE_OF_FUNDS = "source_of_funds"

    player = models.ForeignKey("wallets.Player", on_delete=models.PROTECT, related_name="+")
    request = models.ForeignKey(
        VerificationRequest, on_delete=models.PROTECT, related_name="documents"
    )
    document_type = models.CharField(max_length=24, choices=Type.choices)
    file = models.FileField(upload_to=_document_path)
    expires_on = models.DateField(null=True, blank=True)
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "KYC document"

    def __str__(self):
        return f"{self.get_document_type_display()} of {self.player_id}"
