"""Player-facing responsible-gambling and KYC endpoints.

A player (Bearer player token) reads and changes only their own limits, exclusions and
verification; a staff user needs `wallets.view_player` to read and the matching compliance
permission to act for a player (e.g. support taking a self-exclusion by phone).
"""

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from inputs import fields as strict
from inputs.parsers import StrictFormParser, StrictMultiPartParser
from wallets.api import ERRORS, player_in_scope
from wallets.auth import PlayerPrincipal
from wallets.money import quantize_money

from . import selectors, services
from .models import DepositLimit, DocumentRequest, KycDocument, SelfExclusion


def _acting_for(request, external_id: str, perm: str):
    """The player named in the URL, if the caller may act for them."""
    player = player_in_scope(request, external_id)
    if not isinstance(request.user, PlayerPrincipal) and not request.user.has_perm(perm):
        raise PermissionDenied()
    return player


def _money(value, currency):
    return None if value is None else str(quantize_money(value, currency))


class DepositLimitSerializer(serializers.Serializer):
    currency = serializers.CharField()
    period = serializers.ChoiceField(choices=DepositLimit.Period.choices)
    amount = serializers.CharField(allow_null=True, help_text="In force now; null: no limit.")
    pending_amount = serializers.CharField(allow_null=True, read_only=True)
    pending_removal = serializers.BooleanField(read_only=True)
    pending_from = serializers.DateTimeField(allow_null=True, read_only=True)

    @staticmethod
    def shape(limit: DepositLimit, now) -> dict:
        in_force = limit.effective_amount(now)
        pending = limit.pending_from is not None and limit.pending_from > now
        return {
            "currency": limit.currency_id,
            "period": limit.period,
            "amount": _money(in_force, limit.currency_id),
            "pending_amount": _money(limit.pending_amount, limit.currency_id) if pending else None,
            "pending_removal": pending and limit.pending_removal,
            "pending_from": limit.pending_from if pending else None,
        }


class SetDepositLimitSerializer(serializers.Serializer):
    currency = strict.CurrencyField()
    period = serializers.ChoiceField(choices=DepositLimit.Period.choices)
    amount = strict.AmountField(
        allow_null=True,
        help_text="Decimal string, at most the currency's decimals; null removes the limit "
        "(after cooling-off).",
    )


class ExclusionSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=SelfExclusion.Kind.choices)
    days = strict.StrictIntegerField(
        required=False,
        min_value=1,
        max_value=services.MAX_EXCLUSION_DAYS,
        help_text="Time-out 1-42, self-exclusion 180 up to "
        f"{services.MAX_EXCLUSION_DAYS}; longer: permanent.",
    )
    permanent = strict.StrictBooleanField(default=False)
    reason = strict.TextField(required=False, allow_blank=True, default="", max_length=2000)
    starts_at = serializers.DateTimeField(read_only=True)
    ends_at = serializers.DateTimeField(read_only=True, allow_null=True)


class ResponsibleGamblingSerializer(serializers.Serializer):
    deposit_limits = DepositLimitSerializer(many=True)
    exclusion = ExclusionSerializer(allow_null=True)


class ResponsibleGamblingView(APIView):
    """The player's deposit limits (in force and pending) and the exclusion in force."""

    @extend_schema(responses={200: ResponsibleGamblingSerializer, **ERRORS})
    def get(self, request, external_id: str):
        player = player_in_scope(request, external_id)
        now = timezone.now()
        limits = DepositLimit.objects.filter(player=player).order_by("currency_id", "period")
        exclusion = selectors.active_self_exclusion(player, now)
        return Response(
            {
                "deposit_limits": [DepositLimitSerializer.shape(limit, now) for limit in limits],
                "exclusion": ExclusionSerializer(exclusion).data if exclusion else None,
            }
        )


class DepositLimitView(APIView):
    """Set or remove a deposit limit. Lower: at once. Higher or removed: after cooling-off."""

    @extend_schema(
        request=SetDepositLimitSerializer, responses={200: DepositLimitSerializer, **ERRORS}
    )
    def put(self, request, external_id: str):
        player = _acting_for(request, external_id, "compliance.change_depositlimit")
        incoming = SetDepositLimitSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        limit = services.set_deposit_limit(
            player=player,
            currency=data["currency"],
            period=data["period"],
            amount=data["amount"],
            actor=request.user if request.user.pk else None,
        )
        return Response(DepositLimitSerializer.shape(limit, timezone.now()))


class SelfExclusionView(APIView):
    """Take a time-out (1-42 days) or self-exclude (180+ days or permanent). Cannot be undone;
    deposits and bets stop at once, withdrawals stay possible."""

    @extend_schema(request=ExclusionSerializer, responses={201: ExclusionSerializer, **ERRORS})
    def post(self, request, external_id: str):
        player = _acting_for(request, external_id, "compliance.add_selfexclusion")
        incoming = ExclusionSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        exclusion = services.self_exclude(
            player=player,
            actor=request.user if request.user.pk else None,
            **incoming.validated_data,
        )
        return Response(ExclusionSerializer(exclusion).data, status=status.HTTP_201_CREATED)


class VerificationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    target_level = serializers.CharField()
    status = serializers.CharField()
    decision_reason = serializers.CharField()
    submitted_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


class KycStatusSerializer(serializers.Serializer):
    level = serializers.CharField()
    verifications = VerificationSerializer(many=True)
    requested_documents = serializers.ListField(child=serializers.CharField())


class KycStatusView(APIView):
    """The player's KYC level, their verification requests and documents asked of them."""

    @extend_schema(responses={200: KycStatusSerializer, **ERRORS})
    def get(self, request, external_id: str):
        player = player_in_scope(request, external_id)
        requested = DocumentRequest.objects.filter(player=player, fulfilled_at__isnull=True)
        return Response(
            {
                "level": selectors.kyc_level(player),
                "verifications": VerificationSerializer(
                    player.verification_requests.order_by("-submitted_at"), many=True
                ).data,
                "requested_documents": sorted({t for r in requested for t in r.document_types}),
            }
        )


class SubmitVerificationSerializer(serializers.Serializer):
    MAX_BYTES = 10 * 1024 * 1024

    target_level = serializers.ChoiceField(choices=list(services.LEVEL_DOCUMENTS))
    id_document = serializers.FileField(required=False)
    id_document_expires_on = strict.BoundedDateField(required=False, future_days=50 * 366)
    proof_of_address = serializers.FileField(required=False)
    source_of_funds = serializers.FileField(required=False)

    def validate(self, data):
        for document_type in KycDocument.Type.values:
            upload = data.get(document_type)
            if upload is not None and upload.size > self.MAX_BYTES:
                raise serializers.ValidationError({document_type: "At most 10 MB."})
        return data


class SubmitVerificationView(APIView):
    """Upload documents (multipart) for an officer to review."""

    parser_classes = [StrictMultiPartParser, StrictFormParser]

    @extend_schema(
        request={"multipart/form-data": SubmitVerificationSerializer},
        responses={201: VerificationSerializer, **ERRORS},
    )
    def post(self, request, external_id: str):
        player = _acting_for(request, external_id, "compliance.add_verificationrequest")
        incoming = SubmitVerificationSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        documents = [
            (t, data[t], data.get(f"{t}_expires_on")) for t in KycDocument.Type.values if t in data
        ]
        verification = services.submit_verification(
            player=player, target_level=data["target_level"], documents=documents
        )
        return Response(VerificationSerializer(verification).data, status=status.HTTP_201_CREATED)
