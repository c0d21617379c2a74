from django.urls import path

from . import api

urlpatterns = [
    path(
        "players/<str:external_id>/responsible-gambling",
        api.ResponsibleGamblingView.as_view(),
        name="player-responsible-gambling",
    ),
    path(
        "players/<str:external_id>/deposit-limits",
        api.DepositLimitView.as_view(),
        name="player-deposit-limits",
    ),
    path(
        "players/<str:external_id>/self-exclusion",
        api.SelfExclusionView.as_view(),
        name="player-self-exclusion",
    ),
    path("players/<str:external_id>/kyc", api.KycStatusView.as_view(), name="player-kyc"),
    path(
        "players/<str:external_id>/kyc/verifications",
        api.SubmitVerificationView.as_view(),
        name="player-kyc-verifications",
    ),
]
