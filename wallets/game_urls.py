from django.urls import path

from . import game_api

urlpatterns = [
    path("balance", game_api.GameBalanceView.as_view(), name="game-wallet-balance"),
    path("bet", game_api.GameBetView.as_view(), name="game-wallet-bet"),
    path("win", game_api.GameWinView.as_view(), name="game-wallet-win"),
    path("rollback", game_api.GameRollbackView.as_view(), name="game-wallet-rollback"),
    path("sessions", game_api.GameSessionView.as_view(), name="game-wallet-session"),
]
