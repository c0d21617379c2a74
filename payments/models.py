"""Deposits, withdrawals, refunds and chargebacks, the providers that carry them, the webhook
inbox and the notifications we send to the casino.

The state machines below are the table of legal moves; `payments.services` locks the row,
calls the transition, moves the money and records a `PaymentTransition` in one transaction.
Transition methods only change fields of their own row (no side effects), so a transition that
raises `TransitionNotAllowed` has written nothing.
"""

import uuid
from decimal import Decimal

import django_fsm as fsm
from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce

from wallets.models import MONEY, Currency, Player
from wallets.secret_box import EncryptedKeysJSONField, EncryptedTextField

from .instruments import instrument_fingerprint

# Secrets a connector keeps in `PaymentProvider.options`: Adyen's Basic-auth password of the
# webhook endpoint; Berlin Group's TPP signing key (PKCS#8 PEM, itself encrypted with the
# api_key as passphrase). A new connector with a secret option adds its key here.
SECRET_OPTIONS = ("webhook_password", "tpp_signing_key")


class PaymentProvider(models.Model):
    SECRET_OPTIONS = SECRET_OPTIONS
    # Every secret `providers.base.provider_secret` reads: two columns and the secret options.
    SECRET_NAMES = ("api_key", "webhook_secret", *SECRET_OPTIONS)

    class Kind(models.TextChoices):
        CARD = "card"
        EWALLET = "ewallet", "E-wallet"
        OPEN_BANKING = "open_banking"
        CRYPTO = "crypto"

    class Protocol(models.TextChoices):
        STRIPE = "stripe", "Stripe (PaymentIntents)"
        ADYEN = "adyen", "Adyen (Checkout API)"
        SKRILL = "skrill", "Skrill (Quick Checkout)"
        BTCPAY = "btcpay", "BTCPay Server (Greenfield API)"
        BERLIN_GROUP = "berlin_group", "Berlin Group NextGenPSD2 (PIS)"

    code = models.SlugField(max_length=64, unique=True, help_text="Also the ledger system_code.")
    name = models.CharField(max_length=100)
    # What the player pays with (payout instruments and refunds follow it) …
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # … and which published protocol the connector speaks (`payments.providers.CONNECTORS`).
    protocol = models.CharField(max_length=16, choices=Protocol.choices)
    is_enabled = models.BooleanField(default=True)
    api_base_url = models.URLField(
        max_length=300, help_text="Where the adapter sends requests (the sandbox in the demo)."
    )
    # Secrets: the environment wins (PAYMENTS_<CODE>_API_KEY / _WEBHOOK_SECRET, code upper-cased
    # with dashes as underscores; `providers.base.provider_secret`); the database columns serve
    # operators who set them in the admin, where they are write-only. Encrypted at rest with
    # the cipher game-provider secrets use (wallets/secret_box.py): the attribute is the clear
    # value, the column a Fernet token.
    api_key = EncryptedTextField(blank=True)
    webhook_secret = EncryptedTextField(blank=True)
    merchant_id = models.CharField(max_length=100, blank=True)
    currencies = models.ManyToManyField(Currency, related_name="+", blank=True)
    fee_percent = models.DecimalField(max_digits=6, decimal_places=4, default=Decimal(0))
    fee_fixed = models.DecimalField(**MONEY, default=Decimal(0))
    deposit_timeout_seconds = models.PositiveIntegerField(
        default=30 * 60, help_text="A deposit not completed by then is expired by the janitor."
    )
    # Protocol-specific settings, e.g. {"confirmations": {"BTC": 2}} for BTCPay, the merchant's
    # e-mail for Skrill (`docs/payments.md` lists each protocol's keys). The keys named in
    # SECRET_OPTIONS hold secrets: encrypted at rest, write-only in the admin.
    options = EncryptedKeysJSONField(default=dict, blank=True, secret_keys=SECRET_OPTIONS)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return self.name

    @property
    def supports_refunds(self) -> bool:
        # A crypto payment cannot be pulled back to its sender: the player withdraws to an
        # address of their choice instead.
        return self.kind != self.Kind.CRYPTO


class PaymentMethod(models.Model):
    """What the player picks in the cashier ("card", "sepa_instant", "btc"); one provider
    carries it."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    provider = models.ForeignKey(PaymentProvider, on_delete=models.PROTECT, related_name="methods")
    currencies = models.ManyToManyField(Currency, related_name="+")
    min_amount = models.DecimalField(**MONEY, null=True, blank=True)
    max_amount = models.DecimalField(**MONEY, null=True, blank=True)
    is_enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return self.name


class DeclineKind(models.TextChoices):
    SOFT = "soft", "Soft (retryable)"
    HARD = "hard", "Hard (do not retry)"


class Deposit(fsm.FSMModelMixin, models.Model):
    class Status(models.TextChoices):
        CREATED = "created"
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        EXPIRED = "expired"
        CANCELLED = "cancelled"
        REFUNDED = "refunded"
        PARTIALLY_REFUNDED = "partially_refunded"

    FINAL = (Status.SUCCEEDED, Status.FAILED, Status.EXPIRED, Status.CANCELLED)

    reference = models.CharField(max_length=40, unique=True)
    player = models.ForeignKey(Player, on_delete=models.PROTECT, related_name="deposits")
    provider = models.ForeignKey(PaymentProvider, on_delete=models.PROTECT, related_name="+")
    method = models.ForeignKey(PaymentMethod, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(**MONEY)
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    status = fsm.FSMField(
        max_length=20, default=Status.CREATED, choices=Status.choices, protected=True
    )
    provider_reference = models.CharField(max_length=200, blank=True, db_index=True)
    # What the provider actually collected: differs from `amount` for crypto under/overpayment.
    amount_received = models.DecimalField(**MONEY, null=True, blank=True)
    refunded_amount = models.DecimalField(**MONEY, default=Decimal(0))
    # What chargebacks took back and the provider has not given back (`Chargeback` rows).
    charged_back_amount = models.DecimalField(**MONEY, default=Decimal(0))
    is_paid_late = models.BooleanField(default=False)
    # Underpaid crypto held for an operator's decision (PAYMENTS_CRYPTO_UNDERPAID=review).
    is_held_for_review = models.BooleanField(default=False)
    redirect_url = models.URLField(max_length=500, blank=True)
    instructions = models.JSONField(default=dict, blank=True)
    decline_code = models.CharField(max_length=64, blank=True)
    decline_kind = models.CharField(max_length=4, choices=DeclineKind.choices, blank=True)
    callback_url = models.URLField(max_length=500, blank=True)
    idempotency_key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    compliance_reasons = models.JSONField(default=list, blank=True)
    # What the provider said the player paid from (`instruments.instrument_fingerprint`);
    # written into the deposit's ledger entry for compliance's shared-instrument rules.
    payer_instrument_type = models.CharField(max_length=16, blank=True)
    # "v<key version>:<HMAC hex>" (80 leaves room for the version prefix).
    payer_instrument_fingerprint = models.CharField(max_length=80, blank=True, db_index=True)
    # The payer's name as the provider reports it (card holder, wallet or bank account
    # holder), when it does: third-party funding shows as a name that is not the player's.
    payer_name = models.CharField(max_length=140, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["player", "idempotency_key"], name="deposit_idempotency_key_per_player"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="deposit_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0), name="deposit_refunded_not_negative"
            ),
            # The money invariant of provider events: refunds and chargebacks together never
            # take back more than was credited, and nothing is taken from an uncredited deposit.
            models.CheckConstraint(
                condition=Q(charged_back_amount__gte=0)
                & (
                    Q(amount_received__isnull=True, refunded_amount=0, charged_back_amount=0)
                    | Q(
                        amount_received__isnull=False,
                        refunded_amount__lte=F("amount_received") - F("charged_back_amount"),
                    )
                ),
                name="deposit_refunds_and_chargebacks_within_credit",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            # Reconciliation reads our transactions by when they happened (history-bounded).
            models.Index(Coalesce("completed_at", "created_at"), name="deposit_happened_at"),
        ]

    def __str__(self):
        return self.reference

    @property
    def credited_amount(self) -> Decimal:
        return self.amount_received if self.amount_received is not None else self.amount

    @property
    def instrument_metadata(self) -> dict:
        """The ledger metadata keys compliance's instrument rules read."""
        if not self.payer_instrument_fingerprint:
            return {}
        return {
            "instrument_fingerprint": self.payer_instrument_fingerprint,
            "instrument_type": self.payer_instrument_type,
        }

    @property
    def is_final(self) -> bool:
        return self.status != self.Status.CREATED and self.status != self.Status.PENDING

    @fsm.transition(field=status, source=Status.CREATED, target=Status.PENDING)
    def mark_pending(self, *, provider_reference="", redirect_url="", instructions=None):
        self.provider_reference = provider_reference or self.provider_reference
        self.redirect_url = redirect_url or self.redirect_url
        self.instructions = instructions or self.instructions

    # EXPIRED → SUCCEEDED: crypto paid after the invoice expired still credits (flagged).
    @fsm.transition(
        field=status,
        source=[Status.CREATED, Status.PENDING, Status.EXPIRED],
        target=Status.SUCCEEDED,
    )
    def succeed(self, *, amount_received: Decimal, completed_at, is_late=False):
        self.amount_received = amount_received
        self.is_paid_late = self.is_paid_late or is_late or self.status == self.Status.EXPIRED
        self.is_held_for_review = False
        self.completed_at = completed_at

    @fsm.transition(field=status, source=[Status.CREATED, Status.PENDING], target=Status.FAILED)
    def fail(self, *, decline_code="", decline_kind="", completed_at):
        self.decline_code = decline_code[:64]
        self.decline_kind = decline_kind
        self.completed_at = completed_at

    @fsm.transition(field=status, source=[Status.CREATED, Status.PENDING], target=Status.EXPIRED)
    def expire(self, *, completed_at):
        self.completed_at = completed_at

    @fsm.transition(field=status, source=[Status.CREATED, Status.PENDING], target=Status.CANCELLED)
    def cancel(self, *, completed_at):
        self.completed_at = completed_at

    @fsm.transition(
        field=status,
        source=[Status.SUCCEEDED, Status.PARTIALLY_REFUNDED],
        target=fsm.RETURN_VALUE(Status.PARTIALLY_REFUNDED, Status.REFUNDED),
    )
    def record_refund(self, *, amount: Decimal):
        self.refunded_amount += amount
        if self.refunded_amount >= self.credited_amount:
            return self.Status.REFUNDED
        return self.Status.PARTIALLY_REFUNDED

    # A refund the provider reported as done came back (the card was closed, the scheme
    # returned it): the money is the player's again.
    @fsm.transition(
        field=status,
        source=[Status.PARTIALLY_REFUNDED, Status.REFUNDED],
        target=fsm.RETURN_VALUE(Status.SUCCEEDED, Status.PARTIALLY_REFUNDED),
    )
    def record_refund_return(self, *, amount: Decimal):
        self.refunded_amount -= amount
        if self.refunded_amount <= 0:
            return self.Status.SUCCEEDED
        return self.Status.PARTIALLY_REFUNDED


class PayoutInstrument(models.Model):
    """Where a player's withdrawal goes. Card payouts use the provider's token: a card number
    never reaches us, which keeps the platform out of PCI scope."""

    class Kind(models.TextChoices):
        CARD_TOKEN = "card_token"  # noqa: S105 (a kind, not a secret)
        IBAN = "iban", "IBAN"
        EWALLET = "ewallet", "E-wallet account"
        CRYPTO = "crypto", "Crypto address"

    player = models.ForeignKey(Player, on_delete=models.PROTECT, related_name="payout_instruments")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    provider = models.ForeignKey(PaymentProvider, on_delete=models.PROTECT, related_name="+")
    # The card token, the normalised IBAN, the e-wallet account id or the crypto address.
    identifier = models.CharField(max_length=200)
    network = models.CharField(max_length=16, blank=True, help_text="Crypto network.")
    holder_name = models.CharField(max_length=140, blank=True)
    label = models.CharField(max_length=64, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["player", "kind", "network", "identifier"],
                name="one_instrument_per_player_and_identifier",
            )
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.masked}"

    @property
    def masked(self) -> str:
        return f"…{self.identifier[-4:]}" if len(self.identifier) > 8 else self.identifier

    @property
    def fingerprint(self) -> str:
        return instrument_fingerprint(self.kind, self.identifier)

    @property
    def instrument_metadata(self) -> dict:
        """The ledger metadata keys compliance's instrument rules read: the fingerprint,
        never the IBAN or address itself."""
        return {"instrument_fingerprint": self.fingerprint, "instrument_type": self.kind}


class Withdrawal(fsm.FSMModelMixin, models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested"
        IN_REVIEW = "in_review"
        APPROVED = "approved"
        PROCESSING = "processing"
        PAID = "paid"
        FAILED = "failed"
        REJECTED = "rejected"
        CANCELLED = "cancelled"

    FINAL = (Status.PAID, Status.FAILED, Status.REJECTED, Status.CANCELLED)
    CANCELLABLE = (Status.REQUESTED, Status.IN_REVIEW, Status.APPROVED)

    reference = models.CharField(max_length=40, unique=True)
    player = models.ForeignKey(Player, on_delete=models.PROTECT, related_name="withdrawals")
    provider = models.ForeignKey(PaymentProvider, on_delete=models.PROTECT, related_name="+")
    instrument = models.ForeignKey(PayoutInstrument, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(**MONEY)
    currency = models.ForeignKey(Currency, on_delete=models.PROTECT, related_name="+")
    status = fsm.FSMField(
        max_length=20, default=Status.REQUESTED, choices=Status.choices, protected=True
    )
    provider_reference = models.CharField(max_length=200, blank=True, db_index=True)
    review_reasons = models.JSONField(default=list, blank=True)
    required_approvals = models.PositiveSmallIntegerField(default=1)
    decline_code = models.CharField(max_length=64, blank=True)
    decline_kind = models.CharField(max_length=4, choices=DeclineKind.choices, blank=True)
    rejection_reason = models.TextField(blank=True)
    callback_url = models.URLField(max_length=500, blank=True)
    idempotency_key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["player", "idempotency_key"], name="withdrawal_idempotency_key_per_player"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="withdrawal_amount_positive"),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(Coalesce("completed_at", "created_at"), name="withdrawal_happened_at"),
        ]

    def __str__(self):
        return self.reference

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    @fsm.transition(field=status, source=Status.REQUESTED, target=Status.IN_REVIEW)
    def send_to_review(self, *, reasons):
        self.review_reasons = list(reasons)

    @fsm.transition(
        field=status, source=[Status.REQUESTED, Status.IN_REVIEW], target=Status.APPROVED
    )
    def approve(self):
        pass

    @fsm.transition(field=status, source=Status.APPROVED, target=Status.PROCESSING)
    def start_processing(self, *, started_at):
        self.processing_started_at = started_at

    @fsm.transition(field=status, source=Status.PROCESSING, target=Status.PAID)
    def mark_paid(self, *, completed_at, provider_reference=""):
        self.provider_reference = provider_reference or self.provider_reference
        self.completed_at = completed_at

    @fsm.transition(field=status, source=Status.PROCESSING, target=Status.FAILED)
    def fail(self, *, decline_code="", decline_kind="", completed_at):
        self.decline_code = decline_code[:64]
        self.decline_kind = decline_kind
        self.completed_at = completed_at

    @fsm.transition(
        field=status,
        source=[Status.REQUESTED, Status.IN_REVIEW, Status.APPROVED],
        target=Status.REJECTED,
    )
    def reject(self, *, reason, completed_at):
        self.rejection_reason = reason
        self.completed_at = completed_at

    @fsm.transition(field=status, source=list(CANCELLABLE), target=Status.CANCELLED)
    def cancel(self, *, completed_at):
        self.completed_at = completed_at


class WithdrawalReviewQueue(Withdrawal):
    """The admin's queue of withdrawals waiting for staff, oldest first."""

    class Meta:
        proxy = True
        verbose_name = "withdrawal awaiting review"
        verbose_name_plural = "withdrawal review queue"
        # The queue's own permissions (docs/roles.md): view_withdrawalreviewqueue opens it,
        # review_withdrawals approves or rejects (in the queue and on the withdrawals page);
        # no role needs to change a withdrawal row to decide on it.
        permissions = [("review_withdrawals", "Can approve or reject withdrawals in review")]


class WithdrawalApproval(models.Model):
    """One staff approval; four-eyes withdrawals need two from different users (the unique
    constraint backs the check in `approve_withdrawal`)."""

    withdrawal = models.ForeignKey(Withdrawal, on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["withdrawal", "approver"], name="one_approval_per_user_per_withdrawal"
            )
        ]

    def __str__(self):
        return f"{self.withdrawal_id} approved by {self.approver_id}"


class Refund(fsm.FSMModelMixin, models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        RETURNED = "returned", "Returned (failed after it succeeded)"

    reference = models.CharField(max_length=40, unique=True)
    deposit = models.ForeignKey(Deposit, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(**MONEY)
    status = fsm.FSMField(
        max_length=12, default=Status.PENDING, choices=Status.choices, protected=True
    )
    provider_reference = models.CharField(max_length=200, blank=True, db_index=True)
    reason = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive")
        ]
        indexes = [models.Index(Coalesce("completed_at", "created_at"), name="refund_happened_at")]

    def __str__(self):
        return self.reference

    @fsm.transition(field=status, source=Status.PENDING, target=Status.SUCCEEDED)
    def succeed(self, *, completed_at, provider_reference=""):
        self.provider_reference = provider_reference or self.provider_reference
        self.completed_at = completed_at

    @fsm.transition(field=status, source=Status.PENDING, target=Status.FAILED)
    def fail(self, *, completed_at):
        self.completed_at = completed_at

    @fsm.transition(field=status, source=Status.SUCCEEDED, target=Status.RETURNED)
    def mark_returned(self):
        pass


class Chargeback(models.Model):
    """Money a provider took back from a deposit because the payer disputed it.

    One row per dispute (`provider_reference`, the provider's dispute id). A chargeback that
    arrives before the deposit is credited is `held` and moves no money; the credit applies
    it in the same transaction. `amount` is what was booked: what the provider reported
    (`requested_amount`), capped at what the deposit still had (credited minus refunds and
    earlier chargebacks); a cap is recorded in `reason`."""

    class Status(models.TextChoices):
        HELD = "held", "Held (deposit not credited yet)"
        RECEIVED = "received", "Applied"
        REVERSED = "reversed", "Reversed (won)"

    deposit = models.ForeignKey(Deposit, on_delete=models.PROTECT, related_name="chargebacks")
    amount = models.DecimalField(**MONEY)
    requested_amount = models.DecimalField(**MONEY, null=True, blank=True)
    # The part the player's cash could not cover, booked to write_off.
    written_off = models.DecimalField(**MONEY, default=Decimal(0))
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RECEIVED)
    provider_reference = models.CharField(max_length=200, db_index=True)
    reason = models.TextField(blank=True)
    # When the provider booked it (a settlement report's booking time, a webhook's event time);
    # reconciliation compares this, not the time we learnt of it.
    occurred_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    reversed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(Coalesce("occurred_at", "created_at"), name="chargeback_happened_at")
        ]
        constraints = [
            # Scoped to the deposit: a dispute id is the provider's and never reaches across.
            models.UniqueConstraint(
                fields=["deposit", "provider_reference"], name="one_chargeback_per_dispute"
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="chargeback_amount_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(written_off__gte=0) & Q(written_off__lte=F("amount")),
                name="chargeback_write_off_within_amount",
            ),
        ]

    def __str__(self):
        return self.provider_reference


class ProviderEventKey(models.Model):
    """Each provider event is applied once: its signed identifier (Stripe event id, Adyen
    pspReference + eventCode, Skrill transaction_id + status, BTCPay delivery id) is written
    here in the transaction that applies it; a redelivery hits the unique constraint."""

    provider = models.ForeignKey("PaymentProvider", on_delete=models.PROTECT, related_name="+")
    key = models.CharField(max_length=255)
    webhook = models.ForeignKey("WebhookEvent", on_delete=models.PROTECT, related_name="event_keys")
    event_type = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "key"], name="provider_event_applied_once")
        ]

    def __str__(self):
        return self.key


class WebhookEvent(models.Model):
    """The inbox: every webhook exactly as received, stored before it is trusted."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Not processed yet"
        APPLIED = "applied"
        NO_CHANGE = "no_change", "Duplicate, late or informational"
        REJECTED = "rejected", "Bad signature (never processed)"
        ERROR = "error"

    provider = models.ForeignKey(PaymentProvider, on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField(auto_now_add=True)
    headers = models.JSONField(default=dict)
    # A delivery with a valid signature is kept whole; any other keeps its first KB only, with
    # the digest and size of the whole (an unsigned sender must not fill the table).
    body = models.TextField()
    body_sha256 = models.CharField(max_length=64, blank=True)
    body_size = models.PositiveIntegerField(default=0)
    is_signature_valid = models.BooleanField()
    signature_error = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.PENDING)
    event_type = models.CharField(max_length=64, blank=True)
    payment_reference = models.CharField(max_length=200, blank=True, db_index=True)
    deposit = models.ForeignKey(
        Deposit, null=True, blank=True, on_delete=models.PROTECT, related_name="webhooks"
    )
    withdrawal = models.ForeignKey(
        Withdrawal, null=True, blank=True, on_delete=models.PROTECT, related_name="webhooks"
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            # The sweeper's query: valid, unprocessed, oldest first.
            models.Index(
                fields=["received_at"],
                condition=Q(processed_at__isnull=True, is_signature_valid=True),
                name="webhook_unprocessed",
            )
        ]

    def __str__(self):
        return f"{self.provider_id} webhook {self.pk}"


class PaymentTransition(models.Model):
    """Audit of every state change of a deposit, withdrawal or refund."""

    deposit = models.ForeignKey(
        Deposit, null=True, blank=True, on_delete=models.PROTECT, related_name="transitions"
    )
    withdrawal = models.ForeignKey(
        Withdrawal, null=True, blank=True, on_delete=models.PROTECT, related_name="transitions"
    )
    refund = models.ForeignKey(
        Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="transitions"
    )
    from_status = models.CharField(max_length=20)
    to_status = models.CharField(max_length=20)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    webhook = models.ForeignKey(
        WebhookEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source = models.CharField(max_length=32, help_text="api, admin, webhook, janitor, provider…")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(deposit__isnull=False, withdrawal__isnull=True, refund__isnull=True)
                    | Q(deposit__isnull=True, withdrawal__isnull=False, refund__isnull=True)
                    | Q(deposit__isnull=True, withdrawal__isnull=True, refund__isnull=False)
                ),
                name="transition_has_one_subject",
            )
        ]

    def __str__(self):
        return f"{self.from_status} → {self.to_status}"


class Notification(models.Model):
    """A signed POST to the casino about a payment's final state, retried with backoff.

    `event_id` names the event, not the delivery: every retry and re-send of one notification
    carries the same id (body `event_id`, header `Casino-Event-Id`) so the casino applies it
    once, and two events about one payment (two partial refunds) carry different ids."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        GAVE_UP = "gave_up", "Gave up"

    deposit = models.ForeignKey(
        Deposit, null=True, blank=True, on_delete=models.PROTECT, related_name="notifications"
    )
    withdrawal = models.ForeignKey(
        Withdrawal, null=True, blank=True, on_delete=models.PROTECT, related_name="notifications"
    )
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    url = models.URLField(max_length=500)
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Attempts since the schedule (re)started: an operator's re-send starts a fresh backoff
    # schedule instead of one last attempt.
    attempts_in_schedule = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"notification {self.pk} → {self.url}"


class NotificationAttempt(models.Model):
    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="attempt_log"
    )
    attempted_at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["attempted_at"]

    def __str__(self):
        return f"attempt at {self.attempted_at:%Y-%m-%d %H:%M:%S}: {self.status_code or self.error}"


# The sandbox's own state lives in this app so one migration history covers it.
from .sandbox.models import SandboxPayment  # noqa: E402

__all__ = [
    "Chargeback",
    "Deposit",
    "Notification",
    "NotificationAttempt",
    "PaymentMethod",
    "PaymentProvider",
    "PaymentTransition",
    "PayoutInstrument",
    "ProviderEventKey",
    "Refund",
    "SandboxPayment",
    "WebhookEvent",
    "Withdrawal",
    "WithdrawalApproval",
    "WithdrawalReviewQueue",
]
