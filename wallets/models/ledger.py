"""The double-entry ledger: who owns money, in which currency, and every movement of it.

Invariants (kept by `wallets.services`, verified by `manage.py check_ledger`):
- the postings of a journal entry sum to zero per currency;
- a player account's `balance` equals the sum of its postings and never goes negative;
- a system account's `balance` plus its pending `BalanceDelta` rows equals the sum of its
  postings (system accounts are rolled up, see `BalanceDelta`);
- entries and postings are append-only (PostgreSQL triggers, migration 0002).
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

MONEY = {"max_digits": 28, "decimal_places": 8}


class Currency(models.Model):
    # The ISO code is the key: accounts and postings carry "EUR" without a join.
    code = models.CharField(max_length=8, primary_key=True)
    name = models.CharField(max_length=64)
    exponent = models.PositiveSmallIntegerField(help_text="Decimals allowed: EUR 2, JPY 0, BTC 8.")
    is_crypto = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "currencies"
        ordering = ["code"]

    def __str__(self):
        return self.code


class Player(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        FROZEN = "frozen"
        CLOSED = "closed"

    external_id = models.CharField(
        max_length=64, unique=True, help_text="The player's id on the casino platform."
    )
    email = models.EmailField(blank=True)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    date_of_birth = models.DateField(null=True, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["email"]), models.Index(fields=["last_name", "first_name"])]

    def __str__(self):
        return self.external_id

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class PlayerStatusChange(models.Model):
    """Audit trail of freezes, unfreezes and closures."""

    player = models.ForeignKey(Player, on_delete=models.PROTECT, related_name="status_changes")
    from_status = models.CharField(max_length=8, choices=Player.Status.choices)
    to_status = models.CharField(max_length=8, choices=Player.Status.choices)
    reason = models.TextField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.player_id}: {self.from_status} → {self.to_status}"


class Account(models.Model):
    class Kind(models.TextChoices):
        PLAYER_CASH = "player_cash"
        PLAYER_BONUS = "player_bonus"
        PLAYER_HOLD = "player_hold", "Player withdrawal hold"
        PROVIDER_CLEARING = "provider_clearing"
        GAME_HOUSE = "game_house"
        BONUS_EXPENSE = "bonus_expense"
        FEES = "fees"
        FX = "fx", "FX"
        MANUAL_ADJUSTMENT = "manual_adjustment"
        OPERATOR_BANK = "operator_bank", "Operator bank (settled payouts)"
        WRITE_OFF = "write_off", "Write-offs and chargeback losses"

    PLAYER_KINDS = (Kind.PLAYER_CASH, Kind.PLAYER_BONUS, Kind.PLAYER_HOLD)

    owner = models.ForeignKey(
        Player, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts"
    )
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    # Tells system accounts of one kind apart, e.g. the clearing account of each provider.
    system_code = models.CharField(max_length=64, blank=True, default="")
    balance = models.DecimalField(**MONEY, default=Decimal(0))
    allows_negative = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(allows_negative=True) | Q(balance__gte=0),
                name="account_balance_not_negative",
            ),
            models.CheckConstraint(
                condition=(Q(owner__isnull=False) & Q(kind__startswith="player_"))
                | (Q(owner__isnull=True) & ~Q(kind__startswith="player_")),
                name="account_owner_matches_kind",
            ),
            models.UniqueConstraint(
                fields=["owner", "currency", "kind"],
                condition=Q(owner__isnull=False),
                name="one_player_account_per_kind_and_currency",
            ),
            models.UniqueConstraint(
                fields=["kind", "currency", "system_code"],
                condition=Q(owner__isnull=True),
                name="one_system_account_per_kind_currency_code",
            ),
        ]

    def __str__(self):
        holder = f"player {self.owner_id}" if self.owner_id else (self.system_code or "system")
        return f"{self.get_kind_display()} {self.currency_id} ({holder})"

    @property
    def is_rolled_up(self) -> bool:
        """Accounts that may go negative are never checked, so nobody needs their balance
        inside a request: their postings leave a BalanceDelta instead of locking the row."""
        return self.allows_negative


class JournalEntry(models.Model):
    class Kind(models.TextChoices):
        DEPOSIT = "deposit"
        WITHDRAWAL_HOLD = "withdrawal_hold"
        WITHDRAWAL_RELEASE = "withdrawal_release"
        WITHDRAWAL_SETTLE = "withdrawal_settle"
        BET = "bet"
        WIN = "win"
        BET_REVERSAL = "bet_reversal"
        FX_CONVERSION = "fx_conversion", "FX conversion"
        MANUAL_ADJUSTMENT = "manual_adjustment"
        BONUS_GRANT = "bonus_grant"
        BONUS_CONVERSION = "bonus_conversion"
        BONUS_FORFEIT = "bonus_forfeit"
        REFUND = "refund"
        CHARGEBACK = "chargeback"
        CHARGEBACK_REVERSAL = "chargeback_reversal"
        PROVIDER_FEE = "provider_fee"
        SETTLEMENT_PAYOUT = "settlement_payout"
        RECONCILIATION_ADJUSTMENT = "reconciliation_adjustment"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    idempotency_key = models.CharField(max_length=200, unique=True)
    # Fingerprint of the request that made this entry: a replay with the same key must match.
    request_hash = models.CharField(max_length=64)
    external_reference = models.CharField(max_length=200, blank=True, db_index=True)
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    metadata = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "journal entries"

    def __str__(self):
        return f"#{self.pk} {self.kind}"


class Posting(models.Model):
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="postings")
    # (account, id) below serves both the foreign key and statements in order.
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="postings", db_index=False
    )
    amount = models.DecimalField(**MONEY, help_text="Signed: positive credits the account.")
    # Null on rolled-up system accounts: their running balance is not known in the request.
    balance_after = models.DecimalField(**MONEY, null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["account", "id"])]

    def __str__(self):
        return f"{self.amount:+} on account {self.account_id}"


class BalanceDelta(models.Model):
    """A posting on a rolled-up (system) account that is not yet in the account's `balance`.

    System accounts (game house, provider clearing) sit on the other side of nearly every
    entry; updating their balance row in each request would make every request in the
    platform wait on one row lock. Instead each posting to them appends a delta here, and
    `roll_up_system_balances` folds the committed deltas into the balance and deletes them in
    one transaction. The true balance is always `balance + sum(pending deltas)`.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(**MONEY)

    class Meta:
        indexes = [models.Index(fields=["account"])]

    def __str__(self):
        return f"{self.amount:+} pending on account {self.account_id}"
