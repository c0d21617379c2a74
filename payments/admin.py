"""The operator console for payments. Payments, webhooks and transitions are read-only here;
every action (approve, reject, refund, accept a held deposit, re-send a notification,
re-process a webhook) calls a service, which enforces the rules whoever calls it."""

from django import forms
from django.contrib import admin, messages

from inputs.forms import AmountFormField
from wallets.admin_kit import ActionFormMixin, ReadOnlyAdmin, ReadOnlyInline
from wallets.secret_box import UnreadableSecret

from . import services, tasks
from .models import (
    Chargeback,
    Deposit,
    Notification,
    NotificationAttempt,
    PaymentMethod,
    PaymentProvider,
    PaymentTransition,
    PayoutInstrument,
    ProviderEventKey,
    Refund,
    WebhookEvent,
    Withdrawal,
    WithdrawalApproval,
    WithdrawalReviewQueue,
)


class PaymentAdmin(ActionFormMixin, ReadOnlyAdmin):
    def describe_for_action(self, payment) -> str:
        return f"{payment} — {payment.amount.normalize()} {payment.currency_id} ({payment.status})"


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class RefundForm(forms.Form):
    amount = AmountFormField()
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


# --- providers ----------------------------------------------------------------------------


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value, not even the one just typed into a form that
    came back with an error: a secret is only ever sent to the server."""

    def format_value(self, value):
        return None


def _write_only(label: str, *, multiline: bool = False, max_length: int | None = None):
    widget = (
        WriteOnlyTextarea(attrs={"rows": 4, "autocomplete": "off"})
        if multiline
        else forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
    )
    return forms.CharField(
        label=label, required=False, strip=False, widget=widget, max_length=max_length
    )


class ProviderForm(forms.ModelForm):
    """Secrets are write-only: never rendered back; left blank, the stored value stays; a box
    removes one. They are the `api_key` and `webhook_secret` columns and the secret keys of
    `options` (PaymentProvider.SECRET_OPTIONS), which get fields of their own here: the
    options box shows and takes only the other keys. All of them are stored encrypted."""

    api_key = _write_only("API key", max_length=300)
    webhook_secret = _write_only("Webhook secret", max_length=300)
    webhook_password = _write_only("Webhook password (Adyen Basic auth)", max_length=300)
    tpp_signing_key = _write_only(
        "TPP signing key (Berlin Group, encrypted PKCS#8 PEM)", multiline=True
    )
    clear_secrets = forms.MultipleChoiceField(
        label="Remove stored secrets",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=[(name, name) for name in PaymentProvider.SECRET_NAMES],
    )

    class Meta:
        model = PaymentProvider
        fields = [
            "code",
            "name",
            "kind",
            "protocol",
            "is_enabled",
            "api_base_url",
            "merchant_id",
            "api_key",
            "webhook_secret",
            "currencies",
            "fee_percent",
            "fee_fixed",
            "deposit_timeout_seconds",
            "options",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self._stored()
        # The JSON box shows the non-secret options only.
        self.initial["options"] = {
            k: v
            for k, v in (self.initial.get("options") or {}).items()
            if k not in PaymentProvider.SECRET_OPTIONS
        }
        for name in PaymentProvider.SECRET_NAMES:
            self.fields[name].help_text = self._status(name, stored.get(name))

    def _stored(self) -> dict:
        provider = self.instance
        if not provider.pk:
            return {}
        options = provider.options if isinstance(provider.options, dict) else {}
        return {
            "api_key": provider.api_key,
            "webhook_secret": provider.webhook_secret,
            **{k: options[k] for k in PaymentProvider.SECRET_OPTIONS if k in options},
        }

    def _status(self, name: str, value) -> str:
        """What is stored, never the value: an operator can see that a secret is set (or
        unreadable after a key change) without it ever reaching the browser."""
        if isinstance(value, UnreadableSecret):
            state = "Stored, but no configured key decrypts it: enter it again."
        elif value:
            state = "Stored (encrypted). Leave blank to keep it."
        else:
            state = "Not set."
        if self.instance.code:
            env_name = f"PAYMENTS_{self.instance.code.upper().replace('-', '_')}_{name.upper()}"
            state += f" {env_name} in the environment overrides it."
        return state

    def clean_options(self):
        options = self.cleaned_data.get("options")
        if options in (None, ""):
            options = {}
        if not isinstance(options, dict):
            raise forms.ValidationError("Options are a JSON object.")
        typed = sorted(set(options) & set(PaymentProvider.SECRET_OPTIONS))
        if typed:
            raise forms.ValidationError(
                f"{', '.join(typed)} is a secret: use its write-only field, not the options."
            )
        return options

    def clean(self):
        data = super().clean()
        stored = self._stored()
        removed = set(data.get("clear_secrets") or [])
        for name in PaymentProvider.SECRET_NAMES:
            if data.get(name) and name in removed:
                self.add_error(name, "Either enter a new value or remove it, not both.")
        secrets = {}
        for name in PaymentProvider.SECRET_NAMES:
            if data.get(name):
                secrets[name] = data[name]
            elif name not in removed and stored.get(name) is not None:
                # An UnreadableSecret is kept as it is: its token goes back unchanged.
                secrets[name] = stored[name]
            else:
                secrets[name] = ""
        data["api_key"] = secrets["api_key"]
        data["webhook_secret"] = secrets["webhook_secret"]
        if "options" in data:
            data["options"] = {
                **data["options"],
                **{
                    k: secrets[k]
                    for k in PaymentProvider.SECRET_OPTIONS
                    if secrets[k] or isinstance(secrets[k], UnreadableSecret)
                },
            }
        return data


class MethodInline(admin.TabularInline):
    model = PaymentMethod
    extra = 0
    fields = ["code", "name", "is_enabled", "min_amount", "max_amount"]


@admin.register(PaymentProvider)
class PaymentProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = [
        "code",
        "name",
        "kind",
        "protocol",
        "is_enabled",
        "api_base_url",
        "fee_percent",
        "fee_fixed",
    ]
    list_filter = ["kind", "is_enabled"]
    filter_horizontal = ["currencies"]
    inlines = [MethodInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "code",
                    "name",
                    "kind",
                    "protocol",
                    "is_enabled",
                    "api_base_url",
                    "merchant_id",
                ]
            },
        ),
        (
            "Credentials (write-only, encrypted at rest)",
            {
                "fields": [
                    "api_key",
                    "webhook_secret",
                    "webhook_password",
                    "tpp_signing_key",
                    "clear_secrets",
                ]
            },
        ),
        ("Currencies and fees", {"fields": ["currencies", "fee_percent", "fee_fixed"]}),
        ("Behaviour", {"fields": ["deposit_timeout_seconds", "options"]}),
    ]


@admin.register(PaymentMethod)
class PaymentMethodAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "provider", "is_enabled", "min_amount", "max_amount"]
    list_filter = ["provider", "is_enabled"]
    filter_horizontal = ["currencies"]


# --- shared inlines -------------------------------------------------------------------------


class TransitionInline(ReadOnlyInline):
    model = PaymentTransition
    fields = ["created_at", "from_status", "to_status", "source", "actor", "webhook", "reason"]
    readonly_fields = fields
    show_change_link = False


class WebhookInline(ReadOnlyInline):
    model = WebhookEvent
    fields = ["received_at", "event_type", "is_signature_valid", "outcome", "processed_at"]
    readonly_fields = fields


class NotificationInline(ReadOnlyInline):
    model = Notification
    fields = ["created_at", "url", "status", "attempts", "last_status_code", "next_attempt_at"]
    readonly_fields = fields


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ["reference", "amount", "status", "actor", "reason", "created_at"]
    readonly_fields = fields


class ChargebackInline(ReadOnlyInline):
    model = Chargeback
    fields = [
        "provider_reference",
        "status",
        "requested_amount",
        "amount",
        "written_off",
        "reason",
        "occurred_at",
        "applied_at",
        "reversed_at",
    ]
    readonly_fields = fields


# --- deposits -------------------------------------------------------------------------------


@admin.register(Deposit)
class DepositAdmin(PaymentAdmin):
    list_display = [
        "reference",
        "player",
        "provider",
        "method",
        "amount",
        "currency",
        "status",
        "is_held_for_review",
        "is_paid_late",
        "created_at",
    ]
    list_filter = ["status", "provider", "currency", "is_held_for_review", "is_paid_late"]
    # The payer-instrument fingerprint finds every deposit paid from one card/wallet/account.
    search_fields = [
        "reference",
        "provider_reference",
        "player__external_id",
        "=payer_instrument_fingerprint",
    ]
    list_select_related = ["player", "provider", "method"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Deposit._meta.fields]
    inlines = [TransitionInline, WebhookInline, NotificationInline, RefundInline, ChargebackInline]
    actions = ["accept_held", "refund"]

    @admin.action(description="Accept held deposit (credit what arrived)", permissions=["refund"])
    def accept_held(self, request, queryset):
        return self._with_form(
            request,
            queryset,
            form_class=ReasonForm,
            title="Accept held deposits",
            apply=lambda d, data: services.accept_held_deposit(
                deposit=d, actor=request.user, reason=data["reason"]
            ),
        )

    @admin.action(description="Refund to the payment method", permissions=["refund"])
    def refund(self, request, queryset):
        return self._with_form(
            request,
            queryset,
            form_class=RefundForm,
            title="Refund deposits",
            apply=lambda d, data: services.refund_deposit(
                deposit=d, amount=data["amount"], actor=request.user, reason=data["reason"]
            ),
        )

    def has_refund_permission(self, request):
        return request.user.has_perm("payments.add_refund")


# --- withdrawals ----------------------------------------------------------------------------


class ApprovalInline(ReadOnlyInline):
    model = WithdrawalApproval
    fields = ["created_at", "approver", "reason"]
    readonly_fields = fields
    show_change_link = False


@admin.register(Withdrawal)
class WithdrawalAdmin(PaymentAdmin):
    list_display = [
        "reference",
        "player",
        "provider",
        "amount",
        "currency",
        "status",
        "approvals_given",
        "created_at",
    ]
    list_filter = ["status", "provider", "currency"]
    search_fields = ["reference", "provider_reference", "player__external_id"]
    list_select_related = ["player", "provider"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Withdrawal._meta.fields]
    inlines = [ApprovalInline, TransitionInline, WebhookInline, NotificationInline]
    actions = ["approve", "reject"]

    @admin.display(description="Approvals")
    def approvals_given(self, withdrawal):
        return f"{withdrawal.approvals.count()} / {withdrawal.required_approvals}"

    @admin.action(description="Approve (four-eyes enforced)", permissions=["review"])
    def approve(self, request, queryset):
        return self._with_form(
            request,
            queryset,
            form_class=OptionalReasonForm,
            title="Approve withdrawals",
            apply=lambda w, data: services.approve_withdrawal(
                withdrawal=w, approver=request.user, reason=data["reason"]
            ),
        )

    @admin.action(description="Reject (releases the hold)", permissions=["review"])
    def reject(self, request, queryset):
        return self._with_form(
            request,
            queryset,
            form_class=ReasonForm,
            title="Reject withdrawals",
            apply=lambda w, data: services.reject_withdrawal(
                withdrawal=w, actor=request.user, reason=data["reason"]
            ),
        )

    def has_review_permission(self, request):
        # The queue's own permission (docs/roles.md), not change_withdrawal: deciding on a
        # withdrawal is a service call, never an edit of the row.
        return request.user.has_perm("payments.review_withdrawals")


@admin.register(WithdrawalReviewQueue)
class WithdrawalReviewQueueAdmin(WithdrawalAdmin):
    """Withdrawals waiting for a staff decision, oldest first."""

    list_display = [
        "reference",
        "player",
        "amount",
        "currency",
        "review_reasons",
        "approvals_given",
        "created_at",
    ]
    list_filter = ["currency", "provider"]
    date_hierarchy = None
    ordering = ["created_at", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=Withdrawal.Status.IN_REVIEW)


@admin.register(PayoutInstrument)
class PayoutInstrumentAdmin(ReadOnlyAdmin):
    list_display = ["player", "kind", "masked", "network", "provider", "is_active", "created_at"]
    list_filter = ["kind", "network", "is_active"]
    search_fields = ["player__external_id"]


# --- refunds, chargebacks, inbox, notifications ------------------------------------------------


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ["reference", "deposit", "amount", "status", "actor", "created_at"]
    list_filter = ["status"]
    search_fields = ["reference", "deposit__reference", "provider_reference"]
    inlines = [TransitionInline]


@admin.register(Chargeback)
class ChargebackAdmin(ReadOnlyAdmin):
    """Held chargebacks (they arrived before their deposit was credited) wait here; the credit
    applies them. A capped amount says why in the reason."""

    list_display = [
        "provider_reference",
        "deposit",
        "status",
        "requested_amount",
        "amount",
        "written_off",
        "applied_at",
        "reversed_at",
        "created_at",
    ]
    list_filter = ["status", "deposit__provider"]
    search_fields = ["provider_reference", "deposit__reference"]


class EventKeyInline(ReadOnlyInline):
    model = ProviderEventKey
    fields = ["key", "event_type", "created_at"]
    readonly_fields = fields
    show_change_link = False


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "provider",
        "received_at",
        "event_type",
        "payment_reference",
        "is_signature_valid",
        "outcome",
        "attempts",
        "processed_at",
    ]
    list_filter = ["provider", "is_signature_valid", "outcome"]
    search_fields = ["payment_reference", "event_type", "body_sha256", "event_keys__key"]
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]
    # The signed event ids this delivery applied (a redelivery applies none).
    inlines = [EventKeyInline]
    actions = ["reprocess"]

    @admin.action(description="Queue again for processing (no-op once processed)")
    def reprocess(self, request, queryset):
        ids = list(
            queryset.filter(is_signature_valid=True, processed_at__isnull=True).values_list(
                "pk", flat=True
            )
        )
        for event_id in ids:
            tasks.process_webhook.delay(event_id)
        self.message_user(request, f"{len(ids)} webhook(s) queued.", messages.SUCCESS)


class AttemptInline(ReadOnlyInline):
    model = NotificationAttempt
    fields = ["attempted_at", "status_code", "error", "duration_ms"]
    readonly_fields = fields
    show_change_link = False


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "event_id",
        "deposit",
        "withdrawal",
        "url",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
    ]
    list_filter = ["status"]
    search_fields = ["deposit__reference", "withdrawal__reference", "url", "event_id"]
    readonly_fields = [f.name for f in Notification._meta.fields]
    inlines = [AttemptInline]
    actions = ["resend"]

    @admin.action(description="Re-send to the casino", permissions=["resend"])
    def resend(self, request, queryset):
        for notification in queryset:
            services.resend_notification(notification=notification, actor=request.user)
        self.message_user(request, f"{queryset.count()} notification(s) queued.", messages.SUCCESS)

    def has_resend_permission(self, request):
        return request.user.has_perm("payments.change_notification")
