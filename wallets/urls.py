from django.urls import include, path

from . import api

urlpatterns = [
    path("game-wallet/", include("wallets.game_urls")),
    path("players", api.RegisterPlayerView.as_view(), name="player-register"),
    path(
        "players/<str:external_id>/token",
        api.IssuePlayerTokenView.as_view(),
        name="player-token",
    ),
    path(
        "players/<str:external_id>/balances",
        api.PlayerBalancesView.as_view(),
        name="player-balances",
    ),
    path(
        "players/<str:external_id>/statement",
        api.PlayerStatementView.as_view(),
        name="player-statement",
    ),
]
