"""Player-facing and casino-server endpoints of the wallet.

Players authenticate with a signed player token (wallets/auth.py) and see only their own
wallets; another player's data answers 404, so ids cannot be probed. The casino's backend
authenticates as a staff user with a DRF token and the matching model permissions.
"""

import django_filters
from django import forms
from django.conf import settings
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from inputs import fields as strict

from . import money, selectors, services
from .auth import PlayerPrincipal, issue_player_token
from .models import JournalEntry, Player, Posting


class ErrorSerializer(serializers.Serializer):
    class ErrorBody(serializers.Serializer):
        code = serializers.CharField()
        message = serializers.CharField()
        details = serializers.DictField()

    error = ErrorBody()


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="bad_request"),
    401: OpenApiResponse(ErrorSerializer, description="not_authenticated"),
    403: OpenApiResponse(ErrorSerializer, description="permission_denied"),
    404: OpenApiResponse(ErrorSerializer, description="not_found"),
}


class IsCasinoServer(permissions.BasePermission):
    """A staff integration user of the casino platform, holding the model permission."""

    def has_permission(self, request, view):
        user = request.user
        if isinstance(user, PlayerPrincipal) or not user.is_authenticated:
            return False
        return user.has_perm(getattr(view, "casino_server_perm", "wallets.change_player"))


def player_in_scope(request, external_id: str) -> Player:
    """The player named in the URL, if the caller may see them; 404 otherwise."""
    user = request.user
    if isinstance(user, PlayerPrincipal):
        if user.player.external_id != external_id:
            raise Http404
        return user.player
    if user.is_authenticated and user.has_perm("wallets.view_player"):
        return get_object_or_404(Player, external_id=external_id)
    raise Http404


class PlayerSerializer(serializers.ModelSerializer):
    external_id = strict.IdentifierField(
        max_length=64, help_text="The player's id on the casino platform, exact."
    )
    first_name = strict.TextField(max_length=100, required=False, allow_blank=True)
    last_name = strict.TextField(max_length=100, required=False, allow_blank=True)
    country = strict.CountryField(required=False, allow_blank=True)
    date_of_birth = strict.BoundedDateField(
        required=False,
        # Null in answers (a player registered without one); refused in requests, below.
        allow_null=True,
        help_text="YYYY-MM-DD, from 1900 to today. Omit it if unknown; empty or null is refused.",
    )

    class Meta:
        model = Player
        fields = [
            "external_id",
            "email",
            "first_name",
            "last_name",
            "date_of_birth",
            "country",
            "status",
            "created_at",
        ]
        read_only_fields = ["status", "created_at"]

    def validate_date_of_birth(self, value):
        if value is None:
            raise serializers.ValidationError("Send a date, or leave the field out.")
        return value


class RegisterPlayerView(APIView):
    """Create a player, or update the profile of the player with this external id."""

    permission_classes = [IsCasinoServer]
    casino_server_perm = "wallets.add_player"

    @extend_schema(request=PlayerSerializer, responses={200: PlayerSerializer, **ERRORS})
    def post(self, request):
        incoming = PlayerSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        player = services.register_player(**incoming.validated_data)
        return Response(PlayerSerializer(player).data)


class PlayerTokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Seconds.")


class IssuePlayerTokenView(APIView):
    """Issue a short-lived token the player's browser uses as `Authorization: Bearer <token>`."""

    permission_classes = [IsCasinoServer]

    @extend_schema(request=None, responses={201: PlayerTokenSerializer, **ERRORS})
    def post(self, request, external_id: str):
        player = get_object_or_404(Player, external_id=external_id)
        body = {
            "token": issue_player_token(player),
            "expires_in": settings.PLAYER_TOKEN_TTL_SECONDS,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class BalanceSerializer(serializers.Serializer):
    currency = serializers.CharField()
    cash = serializers.CharField(help_text="Decimal as a string.")
    bonus = serializers.CharField()
    held = serializers.CharField(help_text="Reserved for pending withdrawals.")
    withdrawable = serializers.CharField()


class PlayerBalancesView(APIView):
    """Balances per currency: cash, bonus, held for withdrawals, and what can be withdrawn."""

    @extend_schema(responses={200: BalanceSerializer(many=True), **ERRORS})
    def get(self, request, external_id: str):
        player = player_in_scope(request, external_id)
        rows = [
            {
                "currency": b.currency,
                **{
                    field: money.format_money(getattr(b, field), b.currency)
                    for field in ("cash", "bonus", "held", "withdrawable")
                },
            }
            for b in selectors.player_balances(player)
        ]
        return Response(BalanceSerializer(rows, many=True).data)


class StatementFilterForm(forms.Form):
    """Date bounds a database can compare: years 1900-2200 (year 1 minus a time zone
    overflows)."""

    def clean(self):
        cleaned = super().clean()
        for name in ("created_from", "created_to"):
            value = cleaned.get(name)
            if value is not None and not 1900 <= value.year <= 2200:
                self.add_error(name, "Must be between 1900 and 2200.")
        return cleaned


class StatementFilter(django_filters.FilterSet):
    currency = django_filters.CharFilter(field_name="account__currency_id", max_length=8)
    kind = django_filters.MultipleChoiceFilter(
        field_name="entry__kind", choices=JournalEntry.Kind.choices
    )
    created_from = django_filters.IsoDateTimeFilter(
        field_name="entry__created_at", lookup_expr="gte"
    )
    created_to = django_filters.IsoDateTimeFilter(field_name="entry__created_at", lookup_expr="lt")

    class Meta:
        model = Posting
        form = StatementFilterForm
        fields = ["currency", "kind", "created_from", "created_to"]


class StatementLineSerializer(serializers.Serializer):
    entry_id = serializers.IntegerField(source="entry.id")
    kind = serializers.CharField(source="entry.kind")
    created_at = serializers.DateTimeField(source="entry.created_at")
    currency = serializers.CharField(source="account.currency_id")
    account = serializers.CharField(source="account.kind")
    amount = serializers.SerializerMethodField()
    balance_after = serializers.SerializerMethodField()
    reference = serializers.CharField(source="entry.external_reference")

    def _money(self, posting, value) -> str | None:
        if value is None:
            return None
        return money.format_money(value, posting.account.currency_id)

    def get_amount(self, posting) -> str:
        return self._money(posting, posting.amount)

    def get_balance_after(self, posting) -> str | None:
        return self._money(posting, posting.balance_after)


class PlayerStatementView(generics.ListAPIView):
    """The player's ledger lines, newest first; filter by currency, kind and date range."""

    serializer_class = StatementLineSerializer
    filterset_class = StatementFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Posting.objects.none()
        return selectors.player_postings(player_in_scope(self.request, self.kwargs["external_id"]))
