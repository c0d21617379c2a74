"""Player-facing payments API and the providers' webhook endpoint.

Players call with `Authorization: Bearer <player token>` and see only their own payments
(another player's reference answers 404). Money-creating calls need an `Idempotency-Key`
header: the same key with the same body returns the original (200), with another body 409.
"""

import json

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from inputs import fields as strict
from inputs import rules
from wallets.api import ERRORS, ErrorSerializer
from wallets.auth import PlayerPrincipal
from wallets.client_ip import client_ip
from wallets.money import quantize_money

from . import services
from .models import Deposit, PaymentProvider, PayoutInstrument, Withdrawal

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="Unique per request.",
)
WRITE_ERRORS = {
    **ERRORS,
    409: OpenApiResponse(ErrorSerializer, description="idempotency_conflict / invalid_transition"),
    422: OpenApiResponse(ErrorSerializer, description="insufficient_funds"),
}


class IsPlayer(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, PlayerPrincipal)


def _client_ip(request) -> str | None:
    return client_ip(request)


def _created_or_replayed(payment) -> int:
    return status.HTTP_200_OK if getattr(payment, "is_replay", False) else status.HTTP_201_CREATED


def _idempotency_key(request) -> str:
    """The header exactly as sent: 1-200 characters, no control characters, and no
    surrounding whitespace (refused, not trimmed: `"k "` and `"k"` are different keys)."""
    try:
        return rules.check_identifier(request.headers.get("Idempotency-Key", ""), max_length=200)
    except rules.InputError as error:
        raise serializers.ValidationError(
            {"Idempotency-Key": f"Send an Idempotency-Key header of 1-200 characters: {error}"}
        ) from None


def _url_field(**kwargs):
    # The callback columns hold 500 characters; a URL never needs surrounding whitespace.
    return serializers.URLField(
        required=False, default="", allow_blank=True, max_length=500, **kwargs
    )


class DepositSerializer(serializers.ModelSerializer):
    amount = serializers.SerializerMethodField()
    amount_received = serializers.SerializerMethodField()
    refunded_amount = serializers.SerializerMethodField()
    currency = serializers.CharField(source="currency_id")
    method = serializers.CharField(source="method.code")
    provider = serializers.CharField(source="provider.code")

    class Meta:
        model = Deposit
        fields = [
            "reference",
            "status",
            "method",
            "provider",
            "amount",
            "amount_received",
            "refunded_amount",
            "currency",
            "redirect_url",
            "instructions",
            "decline_code",
            "decline_kind",
            "is_paid_late",
            "is_held_for_review",
            "callback_url",
            "created_at",
            "expires_at",
            "completed_at",
        ]

    def _money(self, deposit, value) -> str | None:
        return None if value is None else str(quantize_money(value, deposit.currency_id))

    def get_amount(self, deposit) -> str:
        return self._money(deposit, deposit.amount)

    def get_amount_received(self, deposit) -> str | None:
        return self._money(deposit, deposit.amount_received)

    def get_refunded_amount(self, deposit) -> str:
        return self._money(deposit, deposit.refunded_amount)


def _small_json_object(value, *, limit: int = 8192):
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be a JSON object.")
    if len(json.dumps(value)) > limit:
        raise serializers.ValidationError(f"At most {limit} bytes.")
    return value


class CreateDepositSerializer(serializers.Serializer):
    method = strict.IdentifierField(max_length=64, help_text="A payment method code.")
    amount = strict.AmountField()
    currency = strict.CurrencyField()
    callback_url = _url_field()
    return_url = _url_field()
    payment_method = serializers.JSONField(
        required=False,
        default=None,
        validators=[_small_json_object],
        help_text=(
            "What the provider's own front-end components collected, passed through untouched "
            'and never stored: Stripe `{"id": "pm_…"}`, Adyen Drop-in\'s `paymentMethod` '
            "object. Omit it for methods with a hosted page."
        ),
    )


class PaymentDetailsSerializer(serializers.Serializer):
    details = serializers.JSONField(
        validators=[_small_json_object],
        help_text="The query parameters the provider's redirect brought the player back with "
        '(e.g. Adyen `{"redirectResult": "…"}`).',
    )


class DepositsView(generics.ListAPIView):
    """List your deposits (newest first), or start one."""

    permission_classes = [IsPlayer]
    serializer_class = DepositSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Deposit.objects.none()
        return Deposit.objects.filter(player=self.request.user.player).select_related(
            "method", "provider"
        )

    @extend_schema(
        request=CreateDepositSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: DepositSerializer, 200: DepositSerializer, **WRITE_ERRORS},
    )
    def post(self, request):
        key = _idempotency_key(request)
        incoming = CreateDepositSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        player = request.user.player
        deposit = services.create_deposit(
            player=player,
            method_code=data["method"],
            amount=data["amount"],
            currency=data["currency"].upper(),
            idempotency_key=key,
            callback_url=data["callback_url"],
            return_url=data["return_url"],
            ip=_client_ip(request),
            payment_method=data["payment_method"],
        )
        return Response(
            DepositSerializer(deposit).data,
            status=_created_or_replayed(deposit),
        )


class DepositDetailView(generics.RetrieveAPIView):
    """One of your deposits by its reference."""

    permission_classes = [IsPlayer]
    serializer_class = DepositSerializer
    lookup_field = "reference"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Deposit.objects.none()
        return Deposit.objects.filter(player=self.request.user.player)


class DepositDetailsView(APIView):
    """Back from the provider's redirect (3-D Secure, bank consent): submit what the redirect
    carried; the provider's answer is applied like a webhook. Idempotent: a finished deposit
    is returned as it is."""

    permission_classes = [IsPlayer]

    @extend_schema(request=PaymentDetailsSerializer, responses={200: DepositSerializer, **ERRORS})
    def post(self, request, reference: str):
        deposit = Deposit.objects.filter(reference=reference, player=request.user.player).first()
        if deposit is None:
            raise Http404
        incoming = PaymentDetailsSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        deposit = services.submit_payment_details(
            deposit=deposit, details=incoming.validated_data["details"]
        )
        return Response(DepositSerializer(deposit).data)


class InstrumentSerializer(serializers.ModelSerializer):
    provider = serializers.CharField(source="provider.code", read_only=True)
    identifier = strict.IdentifierField(
        max_length=200, help_text="Card token, IBAN, wallet id or address."
    )
    network = strict.IdentifierField(
        max_length=16, required=False, allow_blank=True, help_text="Crypto network."
    )
    holder_name = strict.TextField(max_length=140, required=False, allow_blank=True)
    label = strict.TextField(max_length=64, required=False, allow_blank=True)

    class Meta:
        model = PayoutInstrument
        fields = [
            "id",
            "kind",
            "identifier",
            "network",
            "holder_name",
            "label",
            "provider",
            "is_active",
            "created_at",
        ]
        read_only_fields = ["id", "provider", "is_active", "created_at"]
        validators = []


class InstrumentsView(generics.ListAPIView):
    """Your payout instruments, or save a new one (validated: IBAN checksum, address per
    network; card tokens only, never card numbers)."""

    permission_classes = [IsPlayer]
    serializer_class = InstrumentSerializer
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return PayoutInstrument.objects.none()
        return PayoutInstrument.objects.filter(
            player=self.request.user.player, is_active=True
        ).select_related("provider")

    @extend_schema(request=InstrumentSerializer, responses={201: InstrumentSerializer, **ERRORS})
    def post(self, request):
        incoming = InstrumentSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        instrument = services.add_payout_instrument(
            player=request.user.player, **incoming.validated_data
        )
        return Response(InstrumentSerializer(instrument).data, status=status.HTTP_201_CREATED)


class InstrumentDetailView(APIView):
    permission_classes = [IsPlayer]

    @extend_schema(responses={204: None, **ERRORS})
    def delete(self, request, pk: int):
        instrument = PayoutInstrument.objects.filter(pk=pk, player=request.user.player).first()
        if instrument is None:
            raise Http404
        services.deactivate_payout_instrument(instrument=instrument)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WithdrawalSerializer(serializers.ModelSerializer):
    amount = serializers.SerializerMethodField()
    currency = serializers.CharField(source="currency_id")
    instrument = InstrumentSerializer()

    class Meta:
        model = Withdrawal
        fields = [
            "reference",
            "status",
            "amount",
            "currency",
            "instrument",
            "decline_code",
            "rejection_reason",
            "callback_url",
            "created_at",
            "completed_at",
        ]

    def get_amount(self, withdrawal) -> str:
        return str(quantize_money(withdrawal.amount, withdrawal.currency_id))


class CreateWithdrawalSerializer(serializers.Serializer):
    instrument = strict.StrictIntegerField(help_text="The id of one of your payout instruments.")
    amount = strict.AmountField()
    currency = strict.CurrencyField()
    callback_url = _url_field()


class WithdrawalsView(generics.ListAPIView):
    """Your withdrawals, or request one to a saved instrument (the money is held at once)."""

    permission_classes = [IsPlayer]
    serializer_class = WithdrawalSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Withdrawal.objects.none()
        return Withdrawal.objects.filter(player=self.request.user.player).select_related(
            "instrument__provider"
        )

    @extend_schema(
        request=CreateWithdrawalSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: WithdrawalSerializer, 200: WithdrawalSerializer, **WRITE_ERRORS},
    )
    def post(self, request):
        key = _idempotency_key(request)
        incoming = CreateWithdrawalSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        player = request.user.player
        instrument = PayoutInstrument.objects.filter(pk=data["instrument"], player=player).first()
        if instrument is None:
            raise serializers.ValidationError({"instrument": "No such payout instrument."})
        withdrawal = services.request_withdrawal(
            player=player,
            instrument=instrument,
            amount=data["amount"],
            currency=data["currency"].upper(),
            idempotency_key=key,
            callback_url=data["callback_url"],
            ip=_client_ip(request),
        )
        return Response(
            WithdrawalSerializer(withdrawal).data,
            status=_created_or_replayed(withdrawal),
        )


class WithdrawalDetailView(generics.RetrieveAPIView):
    permission_classes = [IsPlayer]
    serializer_class = WithdrawalSerializer
    lookup_field = "reference"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Withdrawal.objects.none()
        return Withdrawal.objects.filter(player=self.request.user.player)


class CancelWithdrawalView(APIView):
    """Cancel a withdrawal that has not gone to the provider yet; the hold is released."""

    permission_classes = [IsPlayer]

    @extend_schema(request=None, responses={200: WithdrawalSerializer, **WRITE_ERRORS})
    def post(self, request, reference: str):
        withdrawal = Withdrawal.objects.filter(
            reference=reference, player=request.user.player
        ).first()
        if withdrawal is None:
            raise Http404
        withdrawal = services.cancel_withdrawal(withdrawal=withdrawal, player=request.user.player)
        return Response(WithdrawalSerializer(withdrawal).data)


def _webhook_error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@csrf_exempt
@require_POST
def webhook(request, provider_code: str):
    """Providers post here. A delivery we cannot read is refused 4xx with nothing written; a
    bad signature is stored (its first KB) and answered 401, never processed; otherwise the
    delivery is stored and answered as its provider expects (Adyen `[accepted]`), and a Celery
    task processes it."""
    provider = PaymentProvider.objects.filter(code=provider_code).first()
    if provider is None:
        return _webhook_error(404, "not_found", "Unknown provider.")
    # Checked before the body is read: an unsigned sender must not make us buffer megabytes.
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _webhook_error(400, "webhook_refused", "Content-Length is not a number.")
    if declared > settings.PAYMENTS_WEBHOOK_MAX_BODY_BYTES:
        return _webhook_error(413, "webhook_too_large", "The body is too large.")
    try:
        event = services.receive_webhook(
            provider_code=provider_code, body=request.body, headers=dict(request.headers)
        )
    except services.WebhookRefused as refusal:
        return _webhook_error(refusal.http_status, refusal.code, refusal.message)
    if not event.is_signature_valid:
        return _webhook_error(401, "invalid_signature", event.signature_error)
    ack = services.webhook_ack(provider)
    return HttpResponse(ack.body, status=ack.status, content_type=ack.content_type)
