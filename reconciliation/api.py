"""Staff API for finance tooling: upload reports, follow their loading, start runs, list breaks,
download the daily report. Staff authenticate with a DRF token or session and need the model
permission named on each view; players never reach these endpoints."""

from datetime import date, timedelta

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from inputs import fields as strict
from inputs.parsers import StrictMultiPartParser
from wallets.api import ERRORS
from wallets.auth import PlayerPrincipal
from wallets.money import quantize_money

from . import selectors
from .models import Break, ReconciliationRun, SettlementImport
from .services import queueing

# Report dates: nothing in the books predates this; one report covers at most this many days.
REPORT_EPOCH = date(2000, 1, 1)
MAX_REPORT_DAYS = 366


class HasReconciliationPerm(permissions.BasePermission):
    def has_permission(self, request, view):
        user = request.user
        if isinstance(user, PlayerPrincipal) or not user.is_authenticated or not user.is_staff:
            return False
        return user.has_perm(view.required_perm)


class ImportSerializer(serializers.ModelSerializer):
    class Meta:
        model = SettlementImport
        fields = [
            "id",
            "layout",
            "provider_code",
            "file_name",
            "checksum",
            "status",
            "rows_total",
            "rows_processed",
            "lines_loaded",
            "lines_already_known",
            "errors",
            "created_at",
            "loaded_at",
        ]


def _provider_code(**kwargs):
    # A slug, exactly as sent: no trimming (a slug has no whitespace to trim).
    return serializers.SlugField(max_length=64, trim_whitespace=False, **kwargs)


class UploadSerializer(serializers.Serializer):
    layout = serializers.ChoiceField(choices=SettlementImport.Layout.choices)
    provider_code = _provider_code()
    file = serializers.FileField(max_length=255)


class UploadReportView(APIView):
    """Upload a settlement report. 201 when new (loading is queued), 200 with the earlier
    import when this exact file was uploaded before for the same provider and layout and was
    not refused."""

    permission_classes = [HasReconciliationPerm]
    required_perm = "reconciliation.add_settlementimport"
    parser_classes = [StrictMultiPartParser]

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={201: ImportSerializer, 200: ImportSerializer, **ERRORS},
    )
    def post(self, request):
        incoming = UploadSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        upload = incoming.validated_data["file"]
        report, created = queueing.upload_report(
            layout=incoming.validated_data["layout"],
            provider_code=incoming.validated_data["provider_code"],
            file_name=upload.name,
            content=upload,
            uploaded_by=request.user,
        )
        return Response(
            ImportSerializer(report).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ImportDetailView(generics.RetrieveAPIView):
    """An import with its progress (rows processed / total) and, if refused, its errors."""

    permission_classes = [HasReconciliationPerm]
    required_perm = "reconciliation.view_settlementimport"
    serializer_class = ImportSerializer
    queryset = SettlementImport.objects.all()


class RunSerializer(serializers.ModelSerializer):
    provider_code = _provider_code(required=False, allow_blank=True)

    class Meta:
        model = ReconciliationRun
        fields = [
            "id",
            "kind",
            "provider_code",
            "status",
            "phase",
            "rows_total",
            "rows_processed",
            "summary",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = [f for f in fields if f not in ("kind", "provider_code")]


class StartRunView(APIView):
    """Queue a matching or settlement run (blank provider: every provider)."""

    permission_classes = [HasReconciliationPerm]
    required_perm = "reconciliation.add_reconciliationrun"

    @extend_schema(request=RunSerializer, responses={202: RunSerializer, **ERRORS})
    def post(self, request):
        incoming = RunSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        queue = (
            queueing.queue_match
            if incoming.validated_data["kind"] == ReconciliationRun.Kind.MATCH
            else queueing.queue_settle
        )
        run = queue(
            provider_code=incoming.validated_data.get("provider_code", ""),
            triggered_by=request.user,
        )
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailView(generics.RetrieveAPIView):
    permission_classes = [HasReconciliationPerm]
    required_perm = "reconciliation.view_reconciliationrun"
    serializer_class = RunSerializer
    queryset = ReconciliationRun.objects.all()


class BreakSerializer(serializers.ModelSerializer):
    age = serializers.SerializerMethodField()

    class Meta:
        model = Break
        fields = [
            "id",
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
            "detected_at",
            "last_seen_at",
            "age",
        ]

    def get_age(self, brk) -> str:
        return selectors.aging_bucket(brk.detected_at)

    def to_representation(self, brk):
        data = super().to_representation(brk)
        # Money as strings at the currency's exponent, like the rest of the API.
        for name in ("our_amount", "provider_amount", "difference"):
            value = getattr(brk, name)
            if value is not None:
                data[name] = str(quantize_money(value, brk.currency))
        return data


class BreakListView(generics.ListAPIView):
    """Breaks, newest first; filter by status, break_type, provider_code.

    The order is total (the id breaks ties): every break of a run shares its detection time,
    and pages cut inside equal sort keys would repeat some rows and drop others."""

    permission_classes = [HasReconciliationPerm]
    required_perm = "reconciliation.view_break"
    serializer_class = BreakSerializer
    queryset = Break.objects.order_by("-detected_at", "-id")
    filterset_fields = ["status", "break_type", "provider_code", "currency"]


class DailyReportView(APIView):
    """The daily report as CSV (query: date_from, date_to, provider_code; default last 7 days)."""

    permission_classes = [HasReconciliationPerm]
    required_perm = "reconciliation.view_settlementline"

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(description="CSV"), **ERRORS})
    def get(self, request):
        params = ReportQuery(data=request.query_params)
        params.is_valid(raise_exception=True)
        today = timezone.now().date()
        rows = selectors.daily_report(
            date_from=params.validated_data.get("date_from") or today - timedelta(days=6),
            date_to=params.validated_data.get("date_to") or today,
            provider_code=params.validated_data.get("provider_code", ""),
        )
        return HttpResponse(selectors.daily_report_csv(rows), content_type="text/csv")


class ReportQuery(serializers.Serializer):
    date_from = strict.BoundedDateField(required=False, earliest=REPORT_EPOCH, future_days=366)
    date_to = strict.BoundedDateField(required=False, earliest=REPORT_EPOCH, future_days=366)
    provider_code = _provider_code(required=False)

    def validate(self, data):
        date_from, date_to = data.get("date_from"), data.get("date_to")
        if date_from and date_to and date_from > date_to:
            raise serializers.ValidationError({"date_from": "Must not be after date_to."})
        if date_from and date_to and (date_to - date_from).days > MAX_REPORT_DAYS:
            raise serializers.ValidationError(
                {"date_to": f"A report spans at most {MAX_REPORT_DAYS} days."}
            )
        return data
