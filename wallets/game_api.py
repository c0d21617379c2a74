"""The seamless game-wallet API that game providers call: balance, bet, win, rollback.

Providers authenticate every call with an HMAC-SHA256 signature of the raw body (see
`ProviderSignatureAuthentication`); the casino's backend opens game sessions with its staff
token. The contract (fields, examples, error codes) is in the OpenAPI schema and in
docs/game-wallet.md.
"""

from dataclasses import dataclass

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import authentication, exceptions, permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from inputs import fields as strict
from inputs.parsers import StrictJSONParser

from . import game_services, money
from .api import ERRORS, ErrorSerializer, IsCasinoServer
from .errors import DomainError
from .game_services import GameOutcome
from .models import GameProvider, Player

KEY_HEADER = "X-Game-Key"
TIMESTAMP_HEADER = "X-Game-Timestamp"
SIGNATURE_HEADER = "X-Game-Signature"

SIGNING = f"""Every call is a `POST` with a JSON body and three headers:

* `{KEY_HEADER}`: the provider's key id (from the operator).
* `{TIMESTAMP_HEADER}`: the current Unix time in seconds; calls more than 300 s away from the
  server's clock are refused.
* `{SIGNATURE_HEADER}`: lowercase hex of HMAC-SHA256(secret, `<timestamp>` + `.` + `<raw body>`),
  computed over the exact bytes sent.

Python: `hmac.new(secret.encode(), f"{{ts}}.".encode() + body, "sha256").hexdigest()`.
"""

ERROR_CODES = [
    (400, "bad_request", "malformed body; amount with too many decimals; zero stake", "fix it"),
    (401, "invalid_signature", "unknown key, bad signature, timestamp off by > 5 min", "re-sign"),
    (403, "provider_disabled", "the operator disabled this provider", "stop"),
    (403, "player_blocked", "bet refused: frozen, closed or self-excluded player", "end game"),
    (403, "session_invalid", "bet without a valid game session (ended, other player)", "relaunch"),
    (404, "player_not_found", "no player with this id", "stop"),
    (
        404,
        "transaction_not_found",
        "win: unknown round, or no standing bet (rolled back); "
        "rollback: the id is not a bet of this round",
        "do not retry",
    ),
    (409, "currency_mismatch", "currency not enabled for the provider, or not the round's", "stop"),
    (409, "duplicate_transaction", "transaction id already used for another request", "stop"),
    (409, "transaction_rolled_back", "bet arrived after its rollback; nothing moved", "void it"),
    (409, "round_closed", "the round is closed: no more bets or wins", "stop"),
    (409, "bet_settled", "rollback refused: the round already has a win", "settle normally"),
    (422, "insufficient_funds", "cash plus bonus do not cover the stake", "tell the player"),
    (422, "max_bet_exceeded", "stake above the max bet of the active bonus", "lower the stake"),
]

ERROR_TABLE = (
    'Errors are `{"error": {"code", "message", "details"}}`. Where the player and currency '
    "are known, `details` carries `balance`, `cash`, `bonus` and `currency` (nothing moved). "
    "A retry with the same transaction id and body returns the original answer, balance "
    "included, with the header `X-Idempotent-Replay: true`.\n\n"
    "| HTTP | code | meaning | provider should |\n|---|---|---|---|\n"
    + "\n".join(f"| {s} | `{c}` | {m} | {a} |" for s, c, m, a in ERROR_CODES)
)


@dataclass(frozen=True)
class ProviderPrincipal:
    """What `request.user` is on a signed game-provider call."""

    provider: GameProvider
    is_authenticated: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    pk: None = None

    def has_perm(self, perm, obj=None) -> bool:
        return False


class ProviderSignatureAuthentication(authentication.BaseAuthentication):
    """HMAC-SHA256 of `<timestamp>.<raw body>` with the provider's secret; see SIGNING."""

    def authenticate(self, request):
        meta = request.META
        provider = game_services.authenticate_provider(
            key_id=meta.get("HTTP_X_GAME_KEY", ""),
            timestamp=meta.get("HTTP_X_GAME_TIMESTAMP", ""),
            signature=meta.get("HTTP_X_GAME_SIGNATURE", ""),
            body=request.body,
        )
        return ProviderPrincipal(provider=provider), None

    def authenticate_header(self, request):
        return "HMAC-SHA256"


class ProviderSignatureScheme(OpenApiAuthenticationExtension):
    target_class = "wallets.game_api.ProviderSignatureAuthentication"
    name = "gameProviderSignature"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": SIGNATURE_HEADER,
            "description": SIGNING,
        }


class IsGameProvider(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, ProviderPrincipal)


# --- serializers ----------------------------------------------------------------------------


def _money_field(note: str = "", **kwargs):
    return strict.AmountField(
        help_text="Decimal string matching `^[0-9]+(\\.[0-9]+)?$`, at most the currency's "
        "decimals (EUR 2, JPY 0, BTC 8)." + note,
        **kwargs,
    )


def _id_field(max_length: int = 128, **kwargs):
    return strict.IdentifierField(max_length=max_length, **kwargs)


class BalanceRequest(serializers.Serializer):
    player_id = _id_field(64, help_text="The player's id at the casino.")
    currency = strict.CurrencyField(help_text="ISO code, e.g. EUR.")


class BetRequest(BalanceRequest):
    transaction_id = _id_field(help_text="Unique per provider; exact (never trimmed).")
    round_id = _id_field()
    amount = _money_field()
    session_token = _id_field(
        1024, help_text="The game session token the casino passed at game launch."
    )
    game_id = _id_field(required=False, allow_blank=True, default="")


class WinRequest(BalanceRequest):
    transaction_id = _id_field(help_text="Unique per provider; exact (never trimmed).")
    round_id = _id_field()
    amount = _money_field(" Zero allowed (a lost round).", allow_zero=True)
    bet_transaction_id = _id_field(
        required=False,
        allow_blank=True,
        default="",
        help_text="Optional: the bet this win pays; otherwise the round's standing bets.",
    )
    round_closed = strict.StrictBooleanField(
        required=False,
        default=False,
        help_text="A JSON boolean. Close the round: no more bets or wins.",
    )


class RollbackRequest(BalanceRequest):
    transaction_id = _id_field(help_text="The rollback's own id, unique per provider.")
    round_id = _id_field()
    bet_transaction_id = _id_field(help_text="The bet to cancel.")


class BalanceResponse(serializers.Serializer):
    player_id = serializers.CharField()
    currency = serializers.CharField()
    balance = serializers.CharField(help_text="cash + bonus, what the player can stake.")
    cash = serializers.CharField()
    bonus = serializers.CharField()


class TransactionResponse(BalanceResponse):
    transaction_id = serializers.CharField(help_text="Echo of the provider's transaction id.")
    wallet_transaction_id = serializers.IntegerField(help_text="The operator's id for it.")
    round_id = serializers.CharField()
    cash_amount = serializers.CharField(help_text="Bet: stake from cash. Win: paid to cash.")
    bonus_amount = serializers.CharField(help_text="Bet: stake from bonus. Win: paid to bonus.")


class RollbackResponse(TransactionResponse):
    outcome = serializers.ChoiceField(
        choices=[c for c, _ in game_services.Outcome.choices],
        help_text="rolled_back; already_rolled_back (nothing moved); bet_not_found (recorded: "
        "the bet is refused if it ever arrives; nothing moved).",
    )


class GameSessionRequest(serializers.Serializer):
    player_id = _id_field(64)
    provider = _id_field(64, help_text="The provider's code.")
    currency = strict.CurrencyField()


class GameSessionResponse(serializers.Serializer):
    session_token = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Seconds during which bets are accepted.")


# --- views ----------------------------------------------------------------------------------


def _money(value, currency: str) -> str:
    return str(money.quantize_money(value, currency))


def _wallet_body(balance: game_services.WalletBalance) -> dict:
    currency = balance.currency
    return {
        "player_id": balance.player_id,
        "currency": currency,
        "balance": _money(balance.balance, currency),
        "cash": _money(balance.cash, currency),
        "bonus": _money(balance.bonus, currency),
    }


def _transaction_body(outcome: GameOutcome) -> dict:
    played = outcome.transaction
    currency = played.currency_id
    body = _wallet_body(
        game_services.WalletBalance(
            player_id=played.player.external_id,
            currency=currency,
            cash=played.cash_after,
            bonus=played.bonus_after,
        )
    )
    body |= {
        "transaction_id": played.transaction_id,
        "wallet_transaction_id": played.pk,
        "round_id": played.round.round_id,
        "cash_amount": _money(played.cash_amount, currency),
        "bonus_amount": _money(played.bonus_amount, currency),
    }
    if played.kind == game_services.TxKind.ROLLBACK:
        body["outcome"] = played.rollback_outcome
    return body


class _GameCall(APIView):
    authentication_classes = [ProviderSignatureAuthentication]
    permission_classes = [IsGameProvider]
    # JSON only: the signature covers the raw JSON body, and one body format is one parser
    # to harden. Anything else is a 400 like any other malformed body.
    parser_classes = [StrictJSONParser]
    request_serializer: type[serializers.Serializer]

    def call(self, provider: GameProvider, data: dict):
        raise NotImplementedError

    def post(self, request):
        provider = request.user.provider
        try:
            body = request.data
        except (exceptions.ParseError, exceptions.UnsupportedMediaType) as exc:
            raise game_services.GameBadRequest(str(exc.detail)) from None
        incoming = self.request_serializer(data=body)
        try:
            if not incoming.is_valid():
                raise game_services.GameBadRequest(
                    "The request is invalid.", fields=incoming.errors
                )
            result = self.call(provider, incoming.validated_data)
        except DomainError as exc:
            exc.details.update(self._balance_details(provider, body))
            raise
        if isinstance(result, GameOutcome):
            headers = {"X-Idempotent-Replay": "true"} if result.is_replay else None
            return Response(_transaction_body(result), headers=headers)
        return Response(_wallet_body(result))

    @staticmethod
    def _balance_details(provider, data) -> dict:
        """The balance for an error answer, when the body names a known player and currency."""
        if not isinstance(data, dict):
            return {}
        try:
            balance = game_services.wallet_balance(
                provider=provider,
                player_id=str(data.get("player_id", "")),
                currency=str(data.get("currency", "")),
            )
        except DomainError:
            return {}
        body = _wallet_body(balance)
        return {key: body[key] for key in ("balance", "cash", "bonus", "currency")}


def _errors(*codes_by_status: tuple[int, str]) -> dict:
    grouped: dict[int, list[str]] = {}
    for http_status, code in codes_by_status:
        grouped.setdefault(http_status, []).append(code)
    return {
        http_status: OpenApiResponse(ErrorSerializer, description=", ".join(codes))
        for http_status, codes in grouped.items()
    }


COMMON_ERRORS = [
    (400, "bad_request"),
    (401, "invalid_signature"),
    (403, "provider_disabled"),
    (404, "player_not_found"),
    (409, "currency_mismatch"),
]

SIGNED_HEADERS_NOTE = f"\n\n{SIGNING}\n\n{ERROR_TABLE}"


def _error_example(
    code: str, http_status: int, message: str, *, with_balance=True, **details
) -> OpenApiExample:
    if with_balance:
        details = {
            "balance": "40.00",
            "cash": "30.00",
            "bonus": "10.00",
            "currency": "EUR",
        } | details
    return OpenApiExample(
        code,
        value={"error": {"code": code, "message": message, "details": details}},
        response_only=True,
        status_codes=[str(http_status)],
    )


COMMON_EXAMPLES = [
    _error_example(
        "invalid_signature",
        401,
        "The signature does not match the body.",
        with_balance=False,
    ),
    _error_example(
        "bad_request",
        400,
        "EUR allows 2 decimals; 1.001 has more.",
        currency="EUR",
        exponent=2,
        amount="1.001",
    ),
]

BALANCE_EXAMPLE = {
    "player_id": "p-1001",
    "currency": "EUR",
    "balance": "40.00",
    "cash": "30.00",
    "bonus": "10.00",
}


class GameBalanceView(_GameCall):
    request_serializer = BalanceRequest

    @extend_schema(
        operation_id="game_wallet_balance",
        tags=["game-wallet"],
        summary="Player balance",
        description="The player's playable balance in a currency: cash plus bonus."
        + SIGNED_HEADERS_NOTE,
        request=BalanceRequest,
        responses={200: BalanceResponse, **_errors(*COMMON_ERRORS)},
        examples=[
            OpenApiExample(
                "balance", value={"player_id": "p-1001", "currency": "EUR"}, request_only=True
            ),
            OpenApiExample("balance", value=BALANCE_EXAMPLE, response_only=True),
            *COMMON_EXAMPLES,
        ],
    )
    def post(self, request):
        return super().post(request)

    def call(self, provider, data):
        return game_services.wallet_balance(
            provider=provider, player_id=data["player_id"], currency=data["currency"]
        )


class GameBetView(_GameCall):
    request_serializer = BetRequest

    @extend_schema(
        operation_id="game_wallet_bet",
        tags=["game-wallet"],
        summary="Bet (debit)",
        description="Take a stake. Cash is spent before bonus money (operator setting). "
        "Refused for blocked or self-excluded players, closed rounds, ended sessions, stakes "
        "over the bonus max bet, and when cash plus bonus do not cover the stake; a refused "
        "bet moves nothing. A bet whose rollback arrived first is refused with "
        "`transaction_rolled_back`." + SIGNED_HEADERS_NOTE,
        request=BetRequest,
        responses={
            200: TransactionResponse,
            **_errors(
                *COMMON_ERRORS,
                (403, "player_blocked"),
                (403, "session_invalid"),
                (409, "duplicate_transaction"),
                (409, "transaction_rolled_back"),
                (409, "round_closed"),
                (422, "insufficient_funds"),
                (422, "max_bet_exceeded"),
            ),
        },
        examples=[
            OpenApiExample(
                "bet",
                value={
                    "player_id": "p-1001",
                    "currency": "EUR",
                    "transaction_id": "tx-9001",
                    "round_id": "r-77",
                    "amount": "5.00",
                    "session_token": "<token from the game launch>",
                    "game_id": "book-of-gold",
                },
                request_only=True,
            ),
            OpenApiExample(
                "bet",
                value={
                    **BALANCE_EXAMPLE,
                    "balance": "35.00",
                    "cash": "25.00",
                    "transaction_id": "tx-9001",
                    "wallet_transaction_id": 4711,
                    "round_id": "r-77",
                    "cash_amount": "5.00",
                    "bonus_amount": "0.00",
                },
                response_only=True,
            ),
            _error_example(
                "insufficient_funds",
                422,
                "Cash and bonus hold 40.00 EUR; 50.00 needed.",
                required="50.00",
            ),
            _error_example(
                "duplicate_transaction",
                409,
                "Transaction tx-9001 was already used for another request.",
                transaction_id="tx-9001",
                original_kind="bet",
            ),
            _error_example(
                "player_blocked",
                403,
                "The player is self-excluded.",
                refused_by="self_excluded",
            ),
            *COMMON_EXAMPLES,
        ],
    )
    def post(self, request):
        return super().post(request)

    def call(self, provider, data):
        return game_services.place_bet(provider=provider, **data)


class GameWinView(_GameCall):
    request_serializer = WinRequest

    @extend_schema(
        operation_id="game_wallet_win",
        tags=["game-wallet"],
        summary="Win (credit)",
        description="Pay a win into a round that has a standing bet; zero is allowed and "
        "`round_closed` closes the round. Paid to frozen players and after the game session "
        "ended (money owed is paid). The win is split between cash and bonus in proportion "
        "to how the round's stakes were split." + SIGNED_HEADERS_NOTE,
        request=WinRequest,
        responses={
            200: TransactionResponse,
            **_errors(
                *COMMON_ERRORS,
                (404, "transaction_not_found"),
                (409, "duplicate_transaction"),
                (409, "round_closed"),
            ),
        },
        examples=[
            OpenApiExample(
                "win",
                value={
                    "player_id": "p-1001",
                    "currency": "EUR",
                    "transaction_id": "tx-9002",
                    "round_id": "r-77",
                    "amount": "12.50",
                    "round_closed": True,
                },
                request_only=True,
            ),
            OpenApiExample(
                "win",
                value={
                    **BALANCE_EXAMPLE,
                    "balance": "47.50",
                    "cash": "37.50",
                    "transaction_id": "tx-9002",
                    "wallet_transaction_id": 4712,
                    "round_id": "r-77",
                    "cash_amount": "12.50",
                    "bonus_amount": "0.00",
                },
                response_only=True,
            ),
            _error_example(
                "transaction_not_found",
                404,
                "Round r-77 has no standing bet to pay.",
                round_id="r-77",
            ),
            *COMMON_EXAMPLES,
        ],
    )
    def post(self, request):
        return super().post(request)

    def call(self, provider, data):
        return game_services.settle_win(
            provider=provider,
            player_id=data["player_id"],
            currency=data["currency"],
            amount=data["amount"],
            transaction_id=data["transaction_id"],
            round_id=data["round_id"],
            bet_transaction_id=data["bet_transaction_id"],
            closes_round=data["round_closed"],
        )


class GameRollbackView(_GameCall):
    request_serializer = RollbackRequest

    @extend_schema(
        operation_id="game_wallet_rollback",
        tags=["game-wallet"],
        summary="Rollback (cancel a bet)",
        description="Cancel a bet by its transaction id; the stake goes back and stops "
        "counting towards bonus wagering. A bet never seen is recorded and answered with "
        "`outcome: bet_not_found` (the bet is refused if it arrives later); a bet already "
        "rolled back answers `already_rolled_back`; a bet whose round has a win is refused "
        "with `bet_settled`. Accepted for frozen players and ended sessions." + SIGNED_HEADERS_NOTE,
        request=RollbackRequest,
        responses={
            200: RollbackResponse,
            **_errors(
                *COMMON_ERRORS,
                (404, "transaction_not_found"),
                (409, "duplicate_transaction"),
                (409, "bet_settled"),
            ),
        },
        examples=[
            OpenApiExample(
                "rollback",
                value={
                    "player_id": "p-1001",
                    "currency": "EUR",
                    "transaction_id": "tx-9003",
                    "round_id": "r-77",
                    "bet_transaction_id": "tx-9001",
                },
                request_only=True,
            ),
            OpenApiExample(
                "rollback",
                value={
                    **BALANCE_EXAMPLE,
                    "transaction_id": "tx-9003",
                    "wallet_transaction_id": 4713,
                    "round_id": "r-77",
                    "cash_amount": "5.00",
                    "bonus_amount": "0.00",
                    "outcome": "rolled_back",
                },
                response_only=True,
            ),
            _error_example(
                "bet_settled",
                409,
                "Round r-77 already has a win.",
                bet_transaction_id="tx-9001",
            ),
            *COMMON_EXAMPLES,
        ],
    )
    def post(self, request):
        return super().post(request)

    def call(self, provider, data):
        return game_services.rollback_bet(provider=provider, **data)


class GameSessionView(APIView):
    """Casino backend: open a game session when the player launches a provider's game, and
    pass the token to the provider; bets must carry it."""

    permission_classes = [IsCasinoServer]
    casino_server_perm = "wallets.change_player"

    @extend_schema(
        operation_id="game_wallet_session",
        tags=["game-wallet"],
        request=GameSessionRequest,
        responses={201: GameSessionResponse, **ERRORS},
    )
    def post(self, request):
        incoming = GameSessionRequest(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        player = get_object_or_404(Player, external_id=data["player_id"])
        provider = get_object_or_404(
            GameProvider.objects.prefetch_related("currencies"), code=data["provider"]
        )
        token = game_services.issue_game_session(
            player=player, provider=provider, currency=data["currency"]
        )
        body = {"session_token": token, "expires_in": settings.GAME_SESSION_TTL_SECONDS}
        return Response(body, status=status.HTTP_201_CREATED)
