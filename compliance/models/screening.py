from django.conf import settings
from django.db import models


class SanctionsImport(models.Model):
    """One import of a sanctions list; the newest per source is the list in force."""

    source = models.CharField(max_length=32, default="ofac_sdn")
    sha256 = models.CharField(max_length=64, help_text="Of the imported files, to spot changes.")
    entity_count = models.PositiveIntegerField()
    name_count = models.PositiveIntegerField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.source} import {self.imported_at:%Y-%m-%d %H:%M}"


class SanctionsEntity(models.Model):
    source = models.CharField(max_length=32, default="ofac_sdn")
    source_id = models.CharField(max_length=32, help_text="OFAC ent_num.")
    name = models.CharField(max_length=400)
    entity_type = models.CharField(max_length=32, blank=True, help_text="individual, vessel, …")
    programs = models.CharField(max_length=400, blank=True)
    title = models.TextField(blank=True)
    remarks = models.TextField(blank=True)
    # ISO dates or years ("1948-12-10", "1955") parsed from the remarks.
    dates_of_birth = models.JSONField(default=list, blank=True)
    # ISO 3166-1 alpha-2 codes from nationality, citizenship and addresses.
    countries = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name_plural = "sanctions entities"
        constraints = [
            models.UniqueConstraint(fields=["source", "source_id"], name="one_entity_per_source_id")
        ]

    def __str__(self):
        return self.name


class SanctionsName(models.Model):
    class Kind(models.TextChoices):
        PRIMARY = "primary"
        AKA = "aka", "a.k.a."
        FKA = "fka", "f.k.a."
        NKA = "nka", "n.k.a."

    entity = models.ForeignKey(SanctionsEntity, on_delete=models.CASCADE, related_name="names")
    name = models.CharField(max_length=400)
    normalized = models.CharField(max_length=400)
    kind = models.CharField(max_length=8, choices=Kind.choices)

    def __str__(self):
        return self.name
