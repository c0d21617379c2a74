"""API throttling (DRF throttles on the Django cache, which is Redis in production).

Three callers, three budgets, each keyed by who is calling rather than by address:
- a player, by the player token's player (`player` rate);
- a casino server or other staff integration, by its user (`casino_server` rate);
- a game provider, by its signed key (`game_provider` rate).
And one budget keyed by client address for *failed* authentication — a bad or expired player
token, an unknown server token, a wrong game-wallet signature, a protected call with no
credentials (`auth_failure` rate). Once an address has spent it, every API call from that
address is refused with 429 before any credential is checked (config/api_middleware.py), so
tokens and signing secrets cannot be guessed at speed.

Rates come from settings (`API_THROTTLE_RATES`, from the environment; docs/api.md). They are
read on every request, not frozen at import, so a deployment (or a test) can change them.
"""

import time

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from wallets.auth import PlayerPrincipal
from wallets.client_ip import client_ip


def _provider_principal():
    # Imported when first needed: DRF imports the throttle classes while rest_framework.views
    # is still loading, and the game-wallet API module needs rest_framework.views.
    from wallets.game_api import ProviderPrincipal

    return ProviderPrincipal


class _ConfiguredRateThrottle(SimpleRateThrottle):
    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_ident(self, request):
        # The one client-address policy (trusted proxies), not DRF's NUM_PROXIES.
        return client_ip(request) or ""


class PlayerRateThrottle(_ConfiguredRateThrottle):
    scope = "player"

    def get_cache_key(self, request, view):
        user = request.user
        if not isinstance(user, PlayerPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.player.pk}


class CasinoServerRateThrottle(_ConfiguredRateThrottle):
    """Staff integrations (DRF token or session): the casino's backend, finance tooling."""

    scope = "casino_server"

    def get_cache_key(self, request, view):
        user = request.user
        if isinstance(user, PlayerPrincipal | _provider_principal()) or not user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.pk}


class GameProviderRateThrottle(_ConfiguredRateThrottle):
    scope = "game_provider"

    def get_cache_key(self, request, view):
        user = request.user
        if not isinstance(user, _provider_principal()):
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.provider.pk}


class AuthFailureThrottle(_ConfiguredRateThrottle):
    """Failed authentications per client address. Unlike the others it is not asked on every
    request: `record` counts a failure, `wait_before_next` says whether the address is out."""

    scope = "auth_failure"

    def _history(self, request) -> tuple[str | None, list[float]]:
        if self.rate is None:
            return None, []
        key = self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
        self.now = time.time()
        history = [t for t in self.cache.get(key, []) if t > self.now - self.duration]
        return key, history

    def wait_before_next(self, request) -> int | None:
        """Seconds until this address may try again, or None if it may now."""
        key, history = self._history(request)
        if key is None or len(history) < self.num_requests:
            return None
        self.history = history
        return max(1, int(self.wait() + 0.999))

    def record(self, request) -> None:
        key, history = self._history(request)
        if key is not None:
            self.cache.set(key, [self.now, *history], self.duration)
