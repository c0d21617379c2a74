"""The operator console for players and the ledger. Ledger rows are read-only here: money is
moved by the services, which the player actions below call."""

import uuid

from django import forms
from django.contrib import admin, messages
from django.db.models import Sum
from django.template.response import TemplateResponse

from . import selectors, services
from .errors import DomainError
from .models import (
    Account,
    BalanceDelta,
    Currency,
    JournalEntry,
    Player,
    PlayerStatusChange,
    Posting,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Currency)
class CurrencyAdmin(ReadOnlyAdmin):
    list_display = ["code", "name", "exponent", "is_crypto"]


class StatusChangeForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=True)


class AdjustmentForm(forms.Form):
    currency = forms.ModelChoiceField(Currency.objects.all())
    account_kind = forms.ChoiceField(
        choices=[(k, Account.Kind(k).label) for k in Account.PLAYER_KINDS],
        initial=Account.Kind.PLAYER_CASH,
    )
    amount = forms.DecimalField(help_text="Signed: negative takes money from the player.")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


class StatusChangeInline(admin.TabularInline):
    model = PlayerStatusChange
    fields = ["created_at", "from_status", "to_status", "actor", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class PlayerAccountInline(admin.TabularInline):
    model = Account
    fields = ["currency", "kind", "balance"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Player)
class PlayerAdmin(admin.ModelAdmin):
    list_display = ["external_id", "email", "full_name", "country", "status", "created_at"]
    list_filter = ["status", "country"]
    search_fields = ["external_id", "email", "first_name", "last_name"]
    readonly_fields = ["status", "created_at"]
    inlines = [PlayerAccountInline, StatusChangeInline]
    actions = ["freeze", "unfreeze", "adjust_balance"]

    def _with_form(self, request, queryset, *, form_class, title, apply):
        """Show `form_class` for the selected players; on submit call `apply` for each."""
        form = form_class(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            for player in queryset:
                try:
                    apply(player, form.cleaned_data)
                except DomainError as exc:
                    self.message_user(request, f"{player}: {exc.message}", messages.ERROR)
                else:
                    self.message_user(request, f"{player}: done.", messages.SUCCESS)
            return None
        return TemplateResponse(
            request,
            "admin/wallets/player/action_form.html",
            {
                **self.admin_site.each_context(request),
                "title": title,
                "form": form,
                "players": queryset,
                "action": request.POST.get("action"),
                "opts": self.model._meta,
            },
        )

    @admin.action(description="Freeze selected players", permissions=["change"])
    def freeze(self, request, queryset):
        return self._with_form(
            request,
            queryset,
            form_class=StatusChangeForm,
            title="Freeze players",
            apply=lambda p, data: services.freeze_player(
                player=p, actor=request.user, reason=data["reason"]
            ),
        )

    @admin.action(description="Unfreeze selected players", permissions=["change"])
    def unfreeze(self, request, queryset):
        return self._with_form(
            request,
            queryset,
            form_class=StatusChangeForm,
            title="Unfreeze players",
            apply=lambda p, data: services.unfreeze_player(
                player=p, actor=request.user, reason=data["reason"]
            ),
        )

    @admin.action(description="Adjust balance (manual entry)", permissions=["adjust"])
    def adjust_balance(self, request, queryset):
        return self._with_form(
            request,
            queryset,
            form_class=AdjustmentForm,
            title="Manual balance adjustment",
            apply=lambda p, data: services.adjust_balance(
                player=p,
                currency=data["currency"].code,
                amount=data["amount"],
                account_kind=data["account_kind"],
                reason=data["reason"],
                actor=request.user,
                # An admin form post is one request; a new key per player per submission.
                idempotency_key=f"admin-adjust-{uuid.uuid4()}",
            ),
        )

    def has_adjust_permission(self, request):
        return request.user.has_perm("wallets.add_journalentry")


class PostingInline(admin.TabularInline):
    model = Posting
    fields = ["account", "amount", "balance_after"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "currency", "owner", "system_code", "true_balance"]
    list_filter = ["kind", "currency"]
    search_fields = ["owner__external_id", "owner__email", "system_code"]
    list_select_related = ["owner"]
    readonly_fields = ["pending_roll_up"]

    @admin.display(description="Balance")
    def true_balance(self, account):
        return services.quantize_money(selectors.account_balance(account), account.currency_id)

    @admin.display(description="Not yet rolled up")
    def pending_roll_up(self, account):
        return BalanceDelta.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or 0


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "created_at", "external_reference", "actor"]
    list_filter = ["kind", "created_at"]
    search_fields = [
        "idempotency_key",
        "external_reference",
        "postings__account__owner__external_id",
    ]
    date_hierarchy = "created_at"
    inlines = [PostingInline]


@admin.register(PlayerStatusChange)
class PlayerStatusChangeAdmin(ReadOnlyAdmin):
    list_display = ["player", "from_status", "to_status", "actor", "created_at"]
    list_filter = ["to_status"]
    search_fields = ["player__external_id", "reason"]
