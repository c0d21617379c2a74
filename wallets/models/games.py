"""Game providers and the seamless-wallet record of every call they make.

`GameTransaction` is the idempotency record of the game-wallet API: one row per provider
transaction id (unique), written in the same database transaction as its journal entry, so a
retry either finds the row and gets the original answer or finds nothing because nothing moved.
"""

from django.db import models
from django.db.models import Q

from .ledger import MONEY, Currency, JournalEntry, Player


class GameProvider(models.Model):
    name = models.CharField(max_length=100)
    code = models.SlugField(
        max_length=64,
        unique=True,
        help_text="Stable code; also the system code of the provider's game house account.",
    )
    key_id = models.CharField(
        max_length=40, unique=True, editable=False, help_text="Sent by the provider in X-Game-Key."
    )
    # Fernet token (AES-128-CBC + HMAC) of the shared secret. HMAC verification needs the
    # secret itself, so it is encrypted (recoverable by the server), not hashed; the admin
    # shows it once when generated and only `secret_hint` afterwards.
    secret_ciphertext = models.TextField(editable=False)
    secret_hint = models.CharField(max_length=12, editable=False)
    secret_rotated_at = models.DateTimeField(editable=False)
    is_enabled = models.BooleanField(default=True)
    currencies = models.ManyToManyField(
        Currency, related_name="+", blank=True, help_text="Currencies this provider may bet in."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.code})"


class GameRound(models.Model):
    """A provider's round: groups the bets and wins of one game play of one player."""

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    provider = models.ForeignKey(GameProvider, on_delete=models.PROTECT, related_name="rounds")
    round_id = models.CharField(max_length=128, help_text="The provider's round id.")
    player = models.ForeignKey(Player, on_delete=models.PROTECT, related_name="game_rounds")
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    game_id = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "round_id"], name="one_round_per_provider_id"
            )
        ]
        indexes = [models.Index(fields=["player", "-id"])]

    def __str__(self):
        return f"{self.provider.code}:{self.round_id}"


class GameTransaction(models.Model):
    class Kind(models.TextChoices):
        BET = "bet"
        WIN = "win"
        ROLLBACK = "rollback"

    class Status(models.TextChoices):
        ACCEPTED = "accepted"
        ROLLED_BACK = "rolled_back", "Rolled back"
        # A rollback arrived for a bet never seen: the bet id is taken so the late bet is refused.
        TOMBSTONE = "tombstone", "Rolled back before it arrived"

    class RollbackOutcome(models.TextChoices):
        ROLLED_BACK = "rolled_back", "The bet was reversed"
        ALREADY_ROLLED_BACK = "already_rolled_back", "The bet was reversed before"
        BET_NOT_FOUND = "bet_not_found", "Recorded; the bet will be refused if it arrives"

    provider = models.ForeignKey(
        GameProvider, on_delete=models.PROTECT, related_name="transactions"
    )
    transaction_id = models.CharField(max_length=128, help_text="The provider's transaction id.")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACCEPTED)
    round = models.ForeignKey(GameRound, on_delete=models.PROTECT, related_name="transactions")
    player = models.ForeignKey(Player, on_delete=models.PROTECT, related_name="+")
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    # Null only on tombstones and rollbacks: they carry no amount of their own.
    amount = models.DecimalField(**MONEY, null=True, blank=True)
    # Bet: the stake taken from cash and from bonus. Win and rollback: what went back to cash
    # and to the bonus, and the bonus share that was forfeited because its bonus had ended.
    cash_amount = models.DecimalField(**MONEY, default=0)
    bonus_amount = models.DecimalField(**MONEY, default=0)
    forfeited_amount = models.DecimalField(**MONEY, default=0)
    bonus = models.ForeignKey(
        "wallets.Bonus",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="game_transactions",
        help_text="Bet: the bonus the stake drew from and counted towards.",
    )
    wagered_amount = models.DecimalField(
        **MONEY, default=0, help_text="How much of this bet counted towards the bonus wagering."
    )
    reference_transaction_id = models.CharField(
        max_length=128, blank=True, help_text="Rollback (and optionally win): the bet it refers to."
    )
    closes_round = models.BooleanField(default=False)
    rollback_outcome = models.CharField(max_length=20, choices=RollbackOutcome.choices, blank=True)
    entry = models.OneToOneField(
        JournalEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The request that made this row: a retry must match it to get the stored answer.
    request_hash = models.CharField(max_length=64)
    # The balances answered to the provider, returned unchanged on a retry.
    cash_after = models.DecimalField(**MONEY, null=True, blank=True)
    bonus_after = models.DecimalField(**MONEY, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "transaction_id"], name="one_game_transaction_per_provider_id"
            ),
            models.CheckConstraint(
                condition=Q(amount__isnull=True) | Q(amount__gte=0),
                name="game_transaction_amount_not_negative",
            ),
        ]
        indexes = [models.Index(fields=["round", "kind"])]

    def __str__(self):
        return f"{self.kind} {self.transaction_id}"
