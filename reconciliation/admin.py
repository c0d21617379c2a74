"""The finance console: upload reports and watch them load, run matching and settlement,
work breaks, read the daily report and the integrity alerts. Every action calls a service;
nothing here writes a model directly."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from payments.models import PaymentProvider
from wallets.admin_kit import ReadOnlyAdmin, ReadOnlyInline
from wallets.errors import DomainError

from . import selectors, services
from .models import (
    Break,
    BreakTransition,
    IntegrityAlert,
    IntegrityRun,
    ProviderPolicy,
    ReconciliationRun,
    ReportFormat,
    SettlementImport,
    SettlementLine,
)
from .services import queueing


def progress(obj) -> str:
    if not obj.rows_total:
        return "—"
    percent = 100 * obj.rows_processed // obj.rows_total
    return f"{obj.rows_processed:,} / {obj.rows_total:,} ({percent}%)"


def _provider_choices():
    return [(code, code) for code in PaymentProvider.objects.values_list("code", flat=True)]


class UploadForm(forms.Form):
    layout = forms.ChoiceField(choices=SettlementImport.Layout.choices)
    provider_code = forms.ChoiceField(label="Provider", choices=())
    file = forms.FileField(help_text="CSV as the provider exports it; columns are read by name.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider_code"].choices = _provider_choices()


@admin.register(SettlementImport)
class SettlementImportAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "file_name",
        "provider_code",
        "layout",
        "status",
        "load_progress",
        "lines_loaded",
        "lines_already_known",
        "created_at",
    ]
    list_filter = ["status", "layout", "provider_code"]
    search_fields = ["file_name", "checksum"]
    readonly_fields = [
        "file_name",
        "provider_code",
        "layout",
        "status",
        "load_progress",
        "lines_loaded",
        "lines_already_known",
        "checksum",
        "size",
        "uploaded_by",
        "created_at",
        "loaded_at",
        "error_list",
    ]
    exclude = ["file", "errors", "rows_total", "rows_processed"]
    actions = ["match_providers"]
    change_list_template = "admin/reconciliation/refreshing_change_list.html"

    @admin.display(description="Progress (rows)")
    def load_progress(self, report):
        return progress(report)

    @admin.display(description="Errors")
    def error_list(self, report):
        if not report.errors:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>line {}, {}: {}</li>",
                (
                    (e.get("line") or "?", e.get("column") or "-", e["message"])
                    for e in report.errors
                ),
            ),
        )

    def is_running(self, request) -> bool:
        return SettlementImport.objects.filter(status=SettlementImport.Status.LOADING).exists()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "is_running": self.is_running(request)}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        return [
            path(
                "upload/",
                self.admin_site.admin_view(self.upload_view),
                name="reconciliation_settlementimport_upload",
            ),
            *super().get_urls(),
        ]

    def has_upload_permission(self, request) -> bool:
        return request.user.has_perm("reconciliation.add_settlementimport")

    def upload_view(self, request):
        if not self.has_upload_permission(request):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                report, created = queueing.upload_report(
                    layout=form.cleaned_data["layout"],
                    provider_code=form.cleaned_data["provider_code"],
                    file_name=upload.name,
                    content=upload,
                    uploaded_by=request.user,
                )
            except DomainError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                if created:
                    self.message_user(request, f"{report} received; loading.", messages.SUCCESS)
                else:
                    self.message_user(
                        request,
                        f"This file was imported before (import #{report.pk}); nothing changed.",
                        messages.WARNING,
                    )
                return HttpResponseRedirect(
                    reverse("admin:reconciliation_settlementimport_changelist")
                )
        return TemplateResponse(
            request,
            "admin/reconciliation/upload.html",
            {
                **self.admin_site.each_context(request),
                "title": "Upload a settlement report",
                "form": form,
                "opts": self.model._meta,
            },
        )

    @admin.action(description="Run matching for the providers of the selected reports")
    def match_providers(self, request, queryset):
        for code in sorted(set(queryset.values_list("provider_code", flat=True))):
            run = queueing.queue_match(provider_code=code, triggered_by=request.user)
            self.message_user(request, f"Matching run #{run.pk} for {code} queued.")


@admin.register(SettlementLine)
class SettlementLineAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "provider_code",
        "record_type",
        "provider_reference",
        "merchant_reference",
        "gross",
        "fee",
        "net",
        "currency",
        "booked_at",
        "batch",
        "outcome",
    ]
    list_filter = ["provider_code", "record_type", "match__status", "match__break_type"]
    search_fields = ["provider_reference", "payment_reference", "merchant_reference", "batch"]
    list_select_related = ["match"]
    show_full_result_count = False

    @admin.display(description="Outcome")
    def outcome(self, line):
        match = getattr(line, "match", None)
        if match is None:
            return "not matched yet"
        return f"{match.status} {match.break_type}".strip()


@admin.register(ProviderPolicy)
class ProviderPolicyAdmin(admin.ModelAdmin):
    """Configuration, not money: tolerances are edited here directly."""

    list_display = [
        "provider_code",
        "amount_tolerance",
        "match_window_hours",
        "grace_period_hours",
        "merchant_accounts",
    ]


@admin.register(ReportFormat)
class ReportFormatAdmin(admin.ModelAdmin):
    """Configuration, not money: how a provider's reports of a layout are written."""

    list_display = [
        "provider_code",
        "layout",
        "delimiter",
        "decimal_separator",
        "thousands_separator",
        "encoding",
    ]


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "kind",
        "provider_code",
        "status",
        "phase",
        "run_progress",
        "created_at",
        "finished_at",
    ]
    list_filter = ["kind", "status", "provider_code"]
    readonly_fields = [
        "kind",
        "provider_code",
        "status",
        "phase",
        "run_progress",
        "summary",
        "error",
        "triggered_by",
        "created_at",
        "started_at",
        "finished_at",
    ]
    exclude = ["rows_total", "rows_processed"]
    change_list_template = "admin/reconciliation/refreshing_change_list.html"

    @admin.display(description="Progress (rows)")
    def run_progress(self, run):
        return progress(run)

    def changelist_view(self, request, extra_context=None):
        running = ReconciliationRun.objects.filter(
            status__in=[ReconciliationRun.Status.QUEUED, ReconciliationRun.Status.RUNNING]
        ).exists()
        extra_context = {
            **(extra_context or {}),
            "is_running": running,
            "run_buttons": self.has_view_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("start/<str:kind>/", view(self.start_view), name="reconciliation_run_start"),
            path("report/", view(self.report_view), name="reconciliation_daily_report"),
            *super().get_urls(),
        ]

    def start_view(self, request, kind: str):
        if request.method != "POST" or not request.user.has_perm(
            "reconciliation.add_reconciliationrun"
        ):
            return HttpResponseRedirect(
                reverse("admin:reconciliation_reconciliationrun_changelist")
            )
        queue = queueing.queue_match if kind == "match" else queueing.queue_settle
        run = queue(provider_code=request.POST.get("provider_code", ""), triggered_by=request.user)
        self.message_user(request, f"{run} queued.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:reconciliation_reconciliationrun_changelist"))

    def report_view(self, request):
        today = timezone.now().date()
        form = ReportForm(request.GET or None, initial={"date_to": today})
        date_from, date_to, provider = today - timedelta(days=6), today, ""
        if form.is_valid():
            date_from = form.cleaned_data["date_from"] or date_from
            date_to = form.cleaned_data["date_to"] or date_to
            provider = form.cleaned_data["provider_code"]
        rows = selectors.daily_report(date_from=date_from, date_to=date_to, provider_code=provider)
        if request.GET.get("format") == "csv":
            response = HttpResponse(selectors.daily_report_csv(rows), content_type="text/csv")
            response["Content-Disposition"] = (
                f'attachment; filename="reconciliation-{date_from}-{date_to}.csv"'
            )
            return response
        return TemplateResponse(
            request,
            "admin/reconciliation/report.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Reconciliation report {date_from} – {date_to}",
                "form": form,
                "rows": rows,
                "aging": selectors.break_aging(provider_code=provider),
                "buckets": selectors.AGING_BUCKETS,
                "csv_query": request.GET.urlencode(),
                "opts": self.model._meta,
            },
        )


class ReportForm(forms.Form):
    date_from = forms.DateField(required=False)
    date_to = forms.DateField(required=False)
    provider_code = forms.CharField(required=False, label="Provider")


class TransitionInline(admin.TabularInline):
    model = BreakTransition
    fields = ["created_at", "from_status", "to_status", "actor", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))


class ResolveForm(ReasonForm):
    resolution = forms.ChoiceField(
        choices=[(r.value, r.label) for r in Break.Resolution if r != Break.Resolution.CLEARED]
    )


class AgingFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"

    def lookups(self, request, model_admin):
        return [(str(i), bucket) for i, bucket in enumerate(selectors.AGING_BUCKETS)]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        now = timezone.now()
        bounds = [(None, 2), (2, 8), (8, 31), (31, None)][int(self.value())]
        if bounds[0] is not None:
            queryset = queryset.filter(detected_at__lte=now - timedelta(days=bounds[0]))
        if bounds[1] is not None:
            queryset = queryset.filter(detected_at__gt=now - timedelta(days=bounds[1]))
        return queryset


@admin.register(Break)
class BreakAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "break_type",
        "provider_code",
        "currency",
        "internal_reference",
        "our_amount",
        "provider_amount",
        "difference",
        "status",
        "age",
        "assigned_to",
    ]
    list_filter = ["status", "break_type", "provider_code", AgingFilter]
    search_fields = ["internal_reference", "line__provider_reference", "key"]
    readonly_fields = [
        "break_type",
        "status",
        "resolution",
        "provider_code",
        "currency",
        "line",
        "internal_kind",
        "internal_id",
        "internal_reference",
        "our_amount",
        "provider_amount",
        "difference",
        "detail",
        "first_run",
        "last_run",
        "detected_at",
        "last_seen_at",
        "assigned_to",
        "write_off_requested_by",
        "closed_by",
        "closed_at",
        "entry",
    ]
    exclude = ["key"]
    inlines = [TransitionInline]
    actions = ["investigate", "resolve", "write_off", "approve_write_off", "reject_write_off"]

    @admin.display(description="Age")
    def age(self, brk):
        return selectors.aging_bucket(brk.detected_at)

    def _each(self, request, queryset, apply, *, form_class=None, title=""):
        form = None
        if form_class is not None:
            form = form_class(request.POST if "apply" in request.POST else None)
            if not (form.is_bound and form.is_valid()):
                return TemplateResponse(
                    request,
                    "admin/reconciliation/action_form.html",
                    {
                        **self.admin_site.each_context(request),
                        "title": title,
                        "form": form,
                        "objects": queryset,
                        "action": request.POST.get("action"),
                        "opts": self.model._meta,
                    },
                )
        for brk in queryset:
            try:
                apply(brk, form.cleaned_data if form else {})
            except DomainError as error:
                self.message_user(request, f"Break #{brk.pk}: {error.message}", messages.ERROR)
            else:
                brk.refresh_from_db()
                self.message_user(request, f"Break #{brk.pk}: {brk.get_status_display()}.")
        return None

    @admin.action(description="Take for investigation", permissions=["work"])
    def investigate(self, request, queryset):
        return self._each(
            request,
            queryset,
            lambda brk, _: services.investigate_break(brk=brk, actor=request.user),
        )

    @admin.action(description="Resolve…", permissions=["work"])
    def resolve(self, request, queryset):
        return self._each(
            request,
            queryset,
            lambda brk, data: services.resolve_break(
                brk=brk,
                actor=request.user,
                resolution=data["resolution"],
                reason=data["reason"],
            ),
            form_class=ResolveForm,
            title="Resolve breaks",
        )

    @admin.action(description="Write off… (above the threshold: to approval)", permissions=["work"])
    def write_off(self, request, queryset):
        return self._each(
            request,
            queryset,
            lambda brk, data: services.request_write_off(
                brk=brk, actor=request.user, reason=data["reason"]
            ),
            form_class=ReasonForm,
            title="Write off breaks",
        )

    @admin.action(description="Approve write-off (second user)", permissions=["approve"])
    def approve_write_off(self, request, queryset):
        return self._each(
            request,
            queryset,
            lambda brk, data: services.approve_write_off(
                brk=brk, approver=request.user, reason=data["reason"]
            ),
            form_class=ReasonForm,
            title="Approve write-offs",
        )

    @admin.action(description="Reject write-off…", permissions=["approve"])
    def reject_write_off(self, request, queryset):
        return self._each(
            request,
            queryset,
            lambda brk, data: services.reject_write_off(
                brk=brk, actor=request.user, reason=data["reason"]
            ),
            form_class=ReasonForm,
            title="Reject write-offs",
        )

    def has_work_permission(self, request) -> bool:
        return request.user.has_perm("reconciliation.change_break")

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("reconciliation.approve_write_off")


class AlertInline(ReadOnlyInline):
    model = IntegrityAlert
    fields = ["message", "acknowledged_by", "acknowledged_at"]
    readonly_fields = fields
    show_change_link = False


@admin.register(IntegrityRun)
class IntegrityRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "started_at", "finished_at", "is_clean", "alert_count"]
    list_filter = ["is_clean"]
    readonly_fields = ["started_at", "finished_at", "is_clean", "ledger_problems", "comparison"]
    exclude = ["clearing_comparison"]
    inlines = [AlertInline]

    @admin.display(description="Alerts")
    def alert_count(self, run):
        return run.alerts.count()

    @admin.display(description="Clearing accounts vs settlement")
    def comparison(self, run):
        return format_html(
            "<table><tr><th>provider</th><th>currency</th><th>ledger in transit</th>"
            "<th>provider in transit</th><th>difference</th><th>open breaks</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        r["provider"],
                        r["currency"],
                        r["ledger_in_transit"],
                        r["provider_in_transit"],
                        r["difference"],
                        r["open_breaks"],
                    )
                    for r in run.clearing_comparison
                ),
            ),
        )

    def get_urls(self):
        return [
            path(
                "run-now/",
                self.admin_site.admin_view(self.run_now_view),
                name="reconciliation_integrity_run_now",
            ),
            *super().get_urls(),
        ]

    def run_now_view(self, request):
        if request.method == "POST" and request.user.has_perm("reconciliation.view_integrityrun"):
            run = services.run_integrity_check()
            level = messages.SUCCESS if run.is_clean else messages.ERROR
            self.message_user(request, f"{run}.", level)
        return HttpResponseRedirect(reverse("admin:reconciliation_integrityrun_changelist"))


@admin.register(IntegrityAlert)
class IntegrityAlertAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "message", "acknowledged_by", "acknowledged_at"]
    list_filter = [("acknowledged_at", admin.EmptyFieldListFilter)]
    actions = ["acknowledge"]

    @admin.action(description="Acknowledge", permissions=["view"])
    def acknowledge(self, request, queryset):
        for alert in queryset:
            services.acknowledge_alert(alert=alert, actor=request.user)
        self.message_user(request, "Acknowledged.")
