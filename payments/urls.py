from django.conf import settings
from django.urls import include, path

from . import api

urlpatterns = [
    path("deposits", api.DepositsView.as_view(), name="deposits"),
    path("deposits/<str:reference>", api.DepositDetailView.as_view(), name="deposit-detail"),
    path(
        "deposits/<str:reference>/details",
        api.DepositDetailsView.as_view(),
        name="deposit-payment-details",
    ),
    path("payout-instruments", api.InstrumentsView.as_view(), name="payout-instruments"),
    path(
        "payout-instruments/<int:pk>",
        api.InstrumentDetailView.as_view(),
        name="payout-instrument-detail",
    ),
    path("withdrawals", api.WithdrawalsView.as_view(), name="withdrawals"),
    path(
        "withdrawals/<str:reference>", api.WithdrawalDetailView.as_view(), name="withdrawal-detail"
    ),
    path(
        "withdrawals/<str:reference>/cancel",
        api.CancelWithdrawalView.as_view(),
        name="withdrawal-cancel",
    ),
    path("payments/webhooks/<slug:provider_code>", api.webhook, name="payments-webhook"),
]

# The simulated providers exist only where the sandbox is on (demo, tests); production
# never routes to them.
if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("", include("payments.sandbox.urls")))
