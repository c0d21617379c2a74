"""The operator console for players and the ledger. Ledger rows are read-only here: money is
moved by the services, which the player actions below call."""

import uuid

from django import forms
from django.contrib import admin, messages
from django.db.models import Sum
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from inputs.forms import AmountFormField

from . import bonus_services, game_services, money, selectors, services
from .admin_kit import ActionFormMixin, ReadOnlyAdmin, ReadOnlyInline
from .errors import DomainError
from .models import (
    Account,
    BalanceDelta,
    Bonus,
    Currency,
    GameProvider,
    GameRound,
    GameTransaction,
    JournalEntry,
    Player,
    PlayerStatusChange,
    Posting,
)


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
    amount = AmountFormField(
        allow_negative=True, help_text="Signed: negative takes money from the player."
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


class StatusChangeInline(ReadOnlyInline):
    model = PlayerStatusChange
    fields = ["created_at", "from_status", "to_status", "actor", "reason"]
    readonly_fields = fields
    show_change_link = False


class PlayerAccountInline(ReadOnlyInline):
    model = Account
    fields = ["currency", "kind", "balance"]
    readonly_fields = fields


@admin.register(Player)
class PlayerAdmin(ActionFormMixin, admin.ModelAdmin):
    list_display = ["external_id", "email", "full_name", "country", "status", "created_at"]
    list_filter = ["status", "country"]
    search_fields = ["external_id", "email", "first_name", "last_name"]
    readonly_fields = ["status", "created_at"]
    inlines = [PlayerAccountInline, StatusChangeInline]
    actions = ["freeze", "unfreeze", "adjust_balance"]

    def describe_for_action(self, player) -> str:
        return f"{player.external_id} — {player.full_name} ({player.status})"

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


class PostingInline(ReadOnlyInline):
    model = Posting
    fields = ["account", "amount", "balance_after"]
    readonly_fields = fields
    show_change_link = False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "currency", "owner", "system_code", "true_balance"]
    list_filter = ["kind", "currency"]
    search_fields = ["owner__external_id", "owner__email", "system_code"]
    list_select_related = ["owner"]
    readonly_fields = ["pending_roll_up"]

    @admin.display(description="Balance")
    def true_balance(self, account):
        return money.quantize_money(selectors.account_balance(account), account.currency_id)

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


# --- game wallet and bonuses ------------------------------------------------------------------


def _secret_page(request, admin_site, provider, secret, title):
    """The one page that ever shows a provider's secret: rendered straight from the request
    that generated it, never stored in a session, cookie or message."""
    return TemplateResponse(
        request,
        "admin/wallets/gameprovider/secret.html",
        {
            **admin_site.each_context(request),
            "title": title,
            "provider": provider,
            "secret": secret,
            "opts": GameProvider._meta,
        },
    )


@admin.register(GameProvider)
class GameProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "key_id", "secret_hint", "is_enabled", "currency_codes"]
    list_filter = ["is_enabled"]
    search_fields = ["name", "code", "key_id"]
    filter_horizontal = ["currencies"]
    actions = ["rotate_secret"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "code", "currencies", "is_enabled"]
        return ["name", "code", "currencies", "is_enabled", "key_id", "secret_hint",
                "secret_rotated_at", "created_at"]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # The code names the provider's game house account: it never changes.
        return ["code", "key_id", "secret_hint", "secret_rotated_at", "created_at"]

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Currencies")
    def currency_codes(self, provider):
        return ", ".join(c.code for c in provider.currencies.all())

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("currencies")

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        created, secret = game_services.create_provider(
            name=obj.name,
            code=obj.code,
            currencies=[c.code for c in form.cleaned_data["currencies"]],
            is_enabled=obj.is_enabled,
        )
        obj.pk, obj.key_id, obj.secret_hint = created.pk, created.key_id, created.secret_hint
        obj._state.adding = False
        request.generated_provider_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "generated_provider_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return _secret_page(request, self.admin_site, obj, secret, "Provider created")

    @admin.action(description="Rotate the secret (shown once)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Rotate one provider at a time.", messages.ERROR)
            return None
        provider = queryset.get()
        secret = game_services.rotate_provider_secret(provider=provider)
        return _secret_page(request, self.admin_site, provider, secret, "Secret rotated")


class GameTransactionInline(admin.TabularInline):
    model = GameTransaction
    fields = ["created_at", "kind", "transaction_id", "status", "amount", "cash_amount",
              "bonus_amount", "forfeited_amount", "rollback_outcome", "reference_transaction_id",
              "entry"]  # fmt: skip
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(GameRound)
class GameRoundAdmin(ReadOnlyAdmin):
    list_display = ["round_id", "provider", "player", "currency", "game_id", "status",
                    "created_at", "closed_at"]  # fmt: skip
    list_filter = ["status", "provider", "currency"]
    search_fields = ["round_id", "player__external_id", "transactions__transaction_id"]
    list_select_related = ["provider", "player"]
    date_hierarchy = "created_at"
    inlines = [GameTransactionInline]


@admin.register(GameTransaction)
class GameTransactionAdmin(ReadOnlyAdmin):
    list_display = ["transaction_id", "kind", "status", "provider", "player", "currency",
                    "amount", "cash_amount", "bonus_amount", "created_at"]  # fmt: skip
    list_filter = ["kind", "status", "provider", "currency"]
    search_fields = ["transaction_id", "reference_transaction_id", "round__round_id",
                     "player__external_id"]  # fmt: skip
    list_select_related = ["provider", "player"]
    date_hierarchy = "created_at"


class BonusGrantForm(forms.Form):
    player = forms.ModelChoiceField(Player.objects.all(), widget=forms.TextInput,
                                    help_text="Player id (primary key).")  # fmt: skip
    currency = forms.ModelChoiceField(Currency.objects.all())
    amount = AmountFormField()
    wagering_multiplier = forms.DecimalField(
        min_value=0, max_digits=6, decimal_places=2, initial=35,
        help_text="Capped by the player's jurisdiction (BONUS_WAGERING_CAPS).",
    )  # fmt: skip
    max_bet = AmountFormField(required=False)
    expires_at = forms.DateTimeField(help_text="UTC, e.g. 2026-12-31 23:59")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    # Generated when the form is shown: submitting the same form twice grants once.
    idempotency_key = forms.CharField(widget=forms.HiddenInput)


class BonusCancelForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(Bonus)
class BonusAdmin(admin.ModelAdmin):
    list_display = ["id", "player", "currency", "amount", "applied_multiplier", "progress",
                    "status", "forfeit_cause", "expires_at", "created_at"]  # fmt: skip
    list_filter = ["status", "forfeit_cause", "currency"]
    search_fields = ["player__external_id", "grant_key", "reason"]
    list_select_related = ["player"]
    date_hierarchy = "created_at"
    actions = ["cancel"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Bonus._meta.fields] + ["progress"]

    def has_delete_permission(self, request, obj=None):
        return False

    def has_cancel_permission(self, request):
        return request.user.has_perm("wallets.change_bonus")

    @admin.display(description="Wagering")
    def progress(self, bonus):
        currency = bonus.currency_id
        wagered = money.quantize_money(bonus.wagered, currency)
        required = money.quantize_money(bonus.wagering_required, currency)
        share = 100 if not required else min(100, int(wagered * 100 / required))
        return format_html("{} / {} ({}%)", wagered, required, share)

    def add_view(self, request, form_url="", extra_context=None):
        """Granting goes through `bonus_services.grant_bonus`, never a model save."""
        if not self.has_add_permission(request):
            return redirect("admin:index")
        data = request.POST if request.method == "POST" else None
        form = BonusGrantForm(data, initial={"idempotency_key": f"admin-grant-{uuid.uuid4()}"})
        if form.is_bound and form.is_valid():
            terms = form.cleaned_data
            try:
                bonus = bonus_services.grant_bonus(
                    player=terms["player"],
                    currency=terms["currency"].code,
                    amount=terms["amount"],
                    wagering_multiplier=terms["wagering_multiplier"],
                    max_bet=terms["max_bet"],
                    expires_at=terms["expires_at"],
                    reason=terms["reason"],
                    actor=request.user,
                    idempotency_key=terms["idempotency_key"],
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"Granted {bonus}.", messages.SUCCESS)
                return redirect(reverse("admin:wallets_bonus_change", args=[bonus.pk]))
        return TemplateResponse(
            request,
            "admin/wallets/bonus/form.html",
            {
                **self.admin_site.each_context(request),
                "title": "Grant a bonus",
                "form": form,
                "opts": self.model._meta,
            },
        )

    @admin.action(description="Cancel selected bonuses (forfeit)", permissions=["cancel"])
    def cancel(self, request, queryset):
        form = BonusCancelForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            for bonus in queryset:
                try:
                    bonus_services.cancel_bonus(
                        bonus=bonus, actor=request.user, reason=form.cleaned_data["reason"]
                    )
                except DomainError as exc:
                    self.message_user(request, f"{bonus}: {exc.message}", messages.ERROR)
                else:
                    self.message_user(request, f"{bonus}: forfeited.", messages.SUCCESS)
            return None
        return TemplateResponse(
            request,
            "admin/wallets/bonus/form.html",
            {
                **self.admin_site.each_context(request),
                "title": "Cancel bonuses",
                "form": form,
                "selected": queryset,
                "action": request.POST.get("action"),
                "opts": self.model._meta,
            },
        )
