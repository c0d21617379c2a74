"""How a player's browser talks to the API.

The casino's backend (a staff user with a DRF token) asks
`POST /api/v1/players/{external_id}/token` for a player token and hands it to the frontend,
which sends `Authorization: Bearer <token>`. The token is signed with SECRET_KEY and expires
after PLAYER_TOKEN_TTL_SECONDS: no table to look up on every request, and a leaked token dies
on its own. A token grants the rights of that one player only.
"""

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .models import Player

_SALT = "wallets.player-token"


@dataclass(frozen=True)
class PlayerPrincipal:
    """What `request.user` is when a player (not a staff user) calls the API."""

    player: Player
    is_authenticated: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    pk: None = None

    def has_perm(self, perm, obj=None) -> bool:
        return False


def issue_player_token(player: Player) -> str:
    return signing.dumps({"player": player.pk}, salt=_SALT, compress=True)


def player_from_token(token: str) -> Player:
    try:
        payload = signing.loads(token, salt=_SALT, max_age=settings.PLAYER_TOKEN_TTL_SECONDS)
    except signing.SignatureExpired:
        raise exceptions.AuthenticationFailed("Player token expired.") from None
    except signing.BadSignature:
        raise exceptions.AuthenticationFailed("Invalid player token.") from None
    player = Player.objects.filter(pk=payload.get("player")).first()
    if player is None:
        raise exceptions.AuthenticationFailed("Invalid player token.")
    return player


class PlayerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode().lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        player = player_from_token(header[1].decode())
        return PlayerPrincipal(player=player), header[1].decode()

    def authenticate_header(self, request):
        return self.keyword


class PlayerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "wallets.auth.PlayerTokenAuthentication"
    name = "playerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A player token from POST /api/v1/players/{external_id}/token.",
        }
