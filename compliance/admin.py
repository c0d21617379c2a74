"""The compliance officer's room: the case queue, KYC review, alerts, rules and the trail.

Every button and action calls a service, which checks the role (an operator who sees a case
cannot close it, whatever the admin shows) and writes the audit trail. Decisions, audit
events, screening data and instrument use are read-only here.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from wallets.admin_kit import ReadOnlyAdmin, ReadOnlyInline
from wallets.errors import DomainError

from . import rules, services
from .models import (
    Alert,
    AmlRule,
    AuditEvent,
    Case,
    CaseNote,
    DepositLimit,
    DocumentRequest,
    InstrumentUse,
    KycDocument,
    KycLevel,
    KycLevelChange,
    KycProfile,
    PaymentDecision,
    RiskAssessment,
    SanctionsEntity,
    SanctionsImport,
    SanctionsName,
    SelfExclusion,
    SuspiciousActivityReport,
    VerificationRequest,
    WithdrawalBlock,
)

# --- forms of the object actions -------------------------------------------------------------


class NoteForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}))


class CloseCaseForm(NoteForm):
    outcome = forms.ChoiceField(choices=Case.Outcome.choices)


class SarForm(forms.Form):
    reference = forms.CharField(max_length=100, help_text="The FIU's reference.")
    filed_on = forms.DateField(initial=timezone.localdate, help_text="YYYY-MM-DD")
    narrative = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}))


class DocumentsForm(forms.Form):
    document_types = forms.MultipleChoiceField(
        choices=KycDocument.Type.choices, widget=forms.CheckboxSelectMultiple
    )
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class KycLevelForm(NoteForm):
    level = forms.ChoiceField(choices=KycLevel.choices)


class EmptyForm(forms.Form):
    pass


class ObjectActionsAdmin(admin.ModelAdmin):
    """Buttons on the change page, each a small form whose submit calls one service.

    `object_actions` maps a name to (label, form class, handler(request, obj, data)).
    """

    object_actions: dict = {}
    # The compliance permission each button needs (the service checks it again); buttons the
    # user's role cannot use are not shown.
    default_action_perm = "work_case"
    action_perms: dict = {}
    change_form_template = "admin/compliance/change_form_actions.html"

    def _may(self, request, action: str) -> bool:
        perm = self.action_perms.get(action, self.default_action_perm)
        return request.user.has_perm(f"compliance.{perm}")

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path(
                "<path:object_id>/act/<str:action>/",
                self.admin_site.admin_view(self.object_action_view),
                name="{}_{}_act".format(*info),
            ),
            *super().get_urls(),
        ]

    def available_actions(self, obj):
        return list(self.object_actions)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        info = self.model._meta.app_label, self.model._meta.model_name
        buttons = []
        if obj is not None:
            for name in self.available_actions(obj):
                if not self._may(request, name):
                    continue
                url = reverse("admin:{}_{}_act".format(*info), args=[obj.pk, name])
                buttons.append((url, self.object_actions[name][0]))
        extra_context = {**(extra_context or {}), "object_action_buttons": buttons}
        return super().change_view(request, object_id, form_url, extra_context)

    def object_action_view(self, request, object_id, action):
        obj = get_object_or_404(self.model, pk=object_id)
        if not self.has_view_permission(request, obj) or action not in self.object_actions:
            return redirect("admin:index")
        label, form_class, handler = self.object_actions[action]
        form = form_class(request.POST or None)
        change_url = reverse(
            f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_change",
            args=[obj.pk],
        )
        if request.method == "POST" and form.is_valid():
            try:
                handler(self, request, obj, form.cleaned_data)
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(request, f"{label}: done.", messages.SUCCESS)
                return redirect(change_url)
        return TemplateResponse(
            request,
            "admin/compliance/action_form.html",
            {
                **self.admin_site.each_context(request),
                "title": f"{label}: {obj}",
                "form": form,
                "object": obj,
                "opts": self.model._meta,
                "change_url": change_url,
            },
        )


class NoAddDeleteMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- cases ---------------------------------------------------------------------------------


class AlertInline(ReadOnlyInline):
    model = Alert
    fields = ["created_at", "rule", "score", "status", "details"]
    readonly_fields = fields


class NoteInline(ReadOnlyInline):
    model = CaseNote
    fields = ["created_at", "author", "text"]
    readonly_fields = fields
    show_change_link = False


class SarInline(ReadOnlyInline):
    model = SuspiciousActivityReport
    fields = ["reference", "filed_on", "filed_by", "narrative"]
    readonly_fields = fields
    show_change_link = False


class AuditInline(ReadOnlyInline):
    model = AuditEvent
    fk_name = "case"
    fields = ["created_at", "action", "actor", "subject", "reason"]
    readonly_fields = fields
    show_change_link = False
    verbose_name_plural = "audit trail"


@admin.register(Case)
class CaseAdmin(NoAddDeleteMixin, ObjectActionsAdmin):
    """The queue: riskiest first, then oldest (the model's ordering)."""

    list_display = [
        "id",
        "player",
        "status",
        "risk_score",
        "alert_count",
        "age",
        "assigned_to",
        "outcome",
    ]
    list_filter = ["status", "outcome", ("assigned_to", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["player__external_id", "player__last_name", "player__email"]
    list_select_related = ["player", "assigned_to"]
    readonly_fields = [
        "player",
        "status",
        "outcome",
        "risk_score",
        "assigned_to",
        "opened_at",
        "updated_at",
        "closed_at",
        "closed_by",
        "closing_note",
        "linked_transactions",
    ]
    fields = readonly_fields
    inlines = [AlertInline, NoteInline, SarInline, AuditInline]
    actions = ["assign_to_me"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(alert_total=Count("alerts"))

    def has_change_permission(self, request, obj=None):
        return False

    def has_work_permission(self, request):
        return request.user.has_perm("compliance.work_case")

    @admin.display(description="alerts", ordering="alert_total")
    def alert_count(self, case):
        return case.alert_total

    @admin.display(description="age", ordering="opened_at")
    def age(self, case):
        days = (timezone.now() - case.opened_at).days
        return f"{days} d"

    @admin.display(description="linked transactions")
    def linked_transactions(self, case):
        ids = sorted(
            {e for a in case.alerts.prefetch_related("entries") for e in a.entries.all()},
            key=lambda e: e.pk,
        )
        return ", ".join(f"#{e.pk} {e.kind}" for e in ids) or "—"

    # Offered to those who may work cases only (the service refuses anyone else anyway).
    @admin.action(description="Assign to me", permissions=["work"])
    def assign_to_me(self, request, queryset):
        for case in queryset:
            try:
                services.assign_case(case=case, actor=request.user)
            except DomainError as error:
                self.message_user(request, f"Case {case.pk}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"Case {case.pk} assigned to you.", messages.SUCCESS)

    object_actions = {
        "assign": (
            "Assign to me",
            EmptyForm,
            lambda a, r, c, d: services.assign_case(case=c, actor=r.user),
        ),
        "investigate": (
            "Start investigation",
            EmptyForm,
            lambda a, r, c, d: services.start_investigation(case=c, actor=r.user),
        ),
        "note": (
            "Add note",
            NoteForm,
            lambda a, r, c, d: services.add_case_note(case=c, actor=r.user, text=d["note"]),
        ),
        "escalate": (
            "Escalate",
            NoteForm,
            lambda a, r, c, d: services.escalate_case(case=c, actor=r.user, reason=d["note"]),
        ),
        "freeze": (
            "Freeze player",
            NoteForm,
            lambda a, r, c, d: services.freeze_player_for_case(
                case=c, actor=r.user, reason=d["note"]
            ),
        ),
        "block": (
            "Block withdrawals",
            NoteForm,
            lambda a, r, c, d: services.block_withdrawals(
                player=c.player, actor=r.user, reason=d["note"], case=c
            ),
        ),
        "documents": (
            "Request documents",
            DocumentsForm,
            lambda a, r, c, d: services.request_documents(
                case=c, actor=r.user, document_types=d["document_types"], message=d["message"]
            ),
        ),
        "sar": (
            "Record SAR",
            SarForm,
            lambda a, r, c, d: services.record_sar(case=c, actor=r.user, **d),
        ),
        "close": (
            "Close case",
            CloseCaseForm,
            lambda a, r, c, d: services.close_case(
                case=c, actor=r.user, outcome=d["outcome"], note=d["note"]
            ),
        ),
    }

    action_perms = {"close": "close_case", "sar": "file_sar"}

    def available_actions(self, case):
        if case.status == Case.Status.CLOSED:
            return []
        names = ["assign", "note", "freeze", "block", "documents", "sar", "escalate", "close"]
        if case.status == Case.Status.OPEN:
            names.insert(1, "investigate")
        if case.status == Case.Status.ESCALATED:
            names.remove("escalate")
        return names


@admin.register(Alert)
class AlertAdmin(NoAddDeleteMixin, ObjectActionsAdmin):
    list_display = ["id", "created_at", "rule", "player", "score", "status", "case"]
    list_filter = ["status", "rule__category", "rule"]
    search_fields = ["player__external_id", "player__last_name"]
    list_select_related = ["rule", "player", "case"]
    readonly_fields = [
        "rule",
        "player",
        "case",
        "score",
        "status",
        "dedup_key",
        "details",
        "entries",
        "created_at",
        "resolved_by",
        "resolved_at",
        "resolution_note",
    ]
    fields = readonly_fields

    def has_change_permission(self, request, obj=None):
        return False

    object_actions = {
        "clear": (
            "Clear (false positive)",
            NoteForm,
            lambda a, r, alert, d: services.resolve_alert(
                alert=alert, actor=r.user, confirm=False, note=d["note"]
            ),
        ),
        "confirm": (
            "Confirm",
            NoteForm,
            lambda a, r, alert, d: services.resolve_alert(
                alert=alert, actor=r.user, confirm=True, note=d["note"]
            ),
        ),
    }

    default_action_perm = "resolve_alert"

    def available_actions(self, alert):
        return list(self.object_actions) if alert.status == Alert.Status.OPEN else []


# --- rules ---------------------------------------------------------------------------------


class AmlRuleForm(forms.ModelForm):
    class Meta:
        model = AmlRule
        fields = ["name", "is_enabled", "score", "parameters", "description"]

    def clean_parameters(self):
        try:
            cleaned = rules.clean_parameters(self.instance.kind, self.cleaned_data["parameters"])
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None
        # Store what the engine will use, defaults included, so the officer sees them.
        return {k: v if isinstance(v, int | list) else str(v) for k, v in cleaned.items()}


@admin.register(AmlRule)
class AmlRuleAdmin(NoAddDeleteMixin, admin.ModelAdmin):
    form = AmlRuleForm
    list_display = ["code", "name", "category", "kind", "is_enabled", "score", "updated_at"]
    list_editable = ["is_enabled", "score"]
    list_filter = ["category", "is_enabled"]
    readonly_fields = ["code", "kind", "category", "updated_at"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.audit(
            action="rule_changed",
            actor=request.user,
            subject=f"rule:{obj.code}",
            changed=form.changed_data,
            is_enabled=obj.is_enabled,
            score=obj.score,
            parameters=obj.parameters,
        )


# --- KYC -----------------------------------------------------------------------------------


class DocumentInline(ReadOnlyInline):
    model = KycDocument
    fields = ["document_type", "file", "expires_on", "uploaded_at"]
    readonly_fields = fields
    show_change_link = False


def _review(decision):
    return lambda a, r, request_, d: services.review_verification(
        request=request_, reviewer=r.user, decision=decision, reason=d.get("note", "")
    )


@admin.register(VerificationRequest)
class VerificationRequestAdmin(NoAddDeleteMixin, ObjectActionsAdmin):
    list_display = ["id", "player", "target_level", "status", "submitted_at", "reviewer"]
    list_filter = ["status", "target_level"]
    search_fields = ["player__external_id", "player__last_name"]
    list_select_related = ["player", "reviewer"]
    readonly_fields = [
        "player",
        "target_level",
        "status",
        "reviewer",
        "decision_reason",
        "submitted_at",
        "decided_at",
    ]
    fields = readonly_fields
    inlines = [DocumentInline]

    def has_change_permission(self, request, obj=None):
        return False

    object_actions = {
        "start_review": ("Start review", EmptyForm, _review("start_review")),
        "approve": ("Approve", NoteForm, _review("approve")),
        "reject": ("Reject", NoteForm, _review("reject")),
        "request_resubmission": ("Request resubmission", NoteForm, _review("request_resubmission")),
    }

    default_action_perm = "review_verification"

    def available_actions(self, request_):
        if request_.status == VerificationRequest.Status.SUBMITTED:
            return ["start_review"]
        if request_.status == VerificationRequest.Status.IN_REVIEW:
            return ["approve", "reject", "request_resubmission"]
        return []


class LevelChangeInline(ReadOnlyInline):
    model = KycLevelChange
    fk_name = "player"
    fields = ["created_at", "from_level", "to_level", "actor", "reason"]
    readonly_fields = fields
    show_change_link = False


@admin.register(KycProfile)
class KycProfileAdmin(NoAddDeleteMixin, ObjectActionsAdmin):
    list_display = ["player", "level", "risk", "updated_at"]
    list_filter = ["level"]
    search_fields = ["player__external_id", "player__last_name"]
    list_select_related = ["player"]
    readonly_fields = ["player", "level", "risk", "updated_at"]
    fields = readonly_fields

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="risk")
    def risk(self, profile):
        assessment = RiskAssessment.objects.filter(player=profile.player_id).first()
        if assessment is None:
            return "—"
        return f"{assessment.level} ({assessment.score}): {', '.join(assessment.reasons)}"

    action_perms = {"set_level": "change_kyc_level"}
    object_actions = {
        "set_level": (
            "Set KYC level",
            KycLevelForm,
            lambda a, r, profile, d: services.set_kyc_level(
                player=profile.player, level=d["level"], actor=r.user, reason=d["note"]
            ),
        ),
        "recompute_risk": (
            "Recompute risk",
            EmptyForm,
            lambda a, r, profile, d: services.recompute_risk(player=profile.player),
        ),
    }


@admin.register(KycLevelChange)
class KycLevelChangeAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "player", "from_level", "to_level", "actor", "reason"]
    list_filter = ["to_level"]
    search_fields = ["player__external_id"]


# --- responsible gambling, decisions, blocks -------------------------------------------------


@admin.register(DepositLimit)
class DepositLimitAdmin(ReadOnlyAdmin):
    list_display = ["player", "currency", "period", "amount", "pending_amount", "pending_from"]
    list_filter = ["period", "currency"]
    search_fields = ["player__external_id"]


@admin.register(SelfExclusion)
class SelfExclusionAdmin(ReadOnlyAdmin):
    list_display = ["player", "kind", "starts_at", "ends_at", "created_at"]
    list_filter = ["kind"]
    search_fields = ["player__external_id"]


@admin.register(PaymentDecision)
class PaymentDecisionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "player", "action", "outcome", "reasons"]
    list_filter = ["action", "outcome"]
    search_fields = ["player__external_id"]
    list_select_related = ["player"]


@admin.register(WithdrawalBlock)
class WithdrawalBlockAdmin(NoAddDeleteMixin, ObjectActionsAdmin):
    list_display = ["player", "created_at", "created_by", "case", "lifted_at", "lifted_by"]
    search_fields = ["player__external_id"]
    readonly_fields = [
        "player",
        "case",
        "reason",
        "created_by",
        "created_at",
        "lifted_at",
        "lifted_by",
        "lift_reason",
    ]
    fields = readonly_fields

    def has_change_permission(self, request, obj=None):
        return False

    object_actions = {
        "lift": (
            "Lift block",
            NoteForm,
            lambda a, r, block, d: services.lift_withdrawal_block(
                block=block, actor=r.user, reason=d["note"]
            ),
        )
    }

    def available_actions(self, block):
        return [] if block.lifted_at else ["lift"]


@admin.register(DocumentRequest)
class DocumentRequestAdmin(ReadOnlyAdmin):
    list_display = ["player", "document_types", "requested_by", "created_at", "fulfilled_at"]


@admin.register(RiskAssessment)
class RiskAssessmentAdmin(ReadOnlyAdmin):
    list_display = ["player", "level", "score", "reasons", "computed_at"]
    list_filter = ["level"]
    search_fields = ["player__external_id"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "action", "actor", "player", "case", "subject", "reason"]
    list_filter = ["action"]
    search_fields = ["player__external_id", "subject"]
    list_select_related = ["actor", "player"]


@admin.register(InstrumentUse)
class InstrumentUseAdmin(ReadOnlyAdmin):
    list_display = ["fingerprint", "instrument_type", "player", "entry", "used_at"]
    search_fields = ["fingerprint", "player__external_id"]


# --- sanctions -----------------------------------------------------------------------------


class SanctionsNameInline(ReadOnlyInline):
    model = SanctionsName
    fields = ["name", "kind", "normalized"]
    readonly_fields = fields
    show_change_link = False


@admin.register(SanctionsEntity)
class SanctionsEntityAdmin(ReadOnlyAdmin):
    list_display = ["source_id", "name", "entity_type", "programs", "countries"]
    list_filter = ["entity_type"]
    search_fields = ["name", "names__name", "source_id"]
    inlines = [SanctionsNameInline]


@admin.register(SanctionsImport)
class SanctionsImportAdmin(ReadOnlyAdmin):
    list_display = ["imported_at", "source", "entity_count", "name_count", "sha256", "actor"]
