from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

admin.site.site_header = "Casino payments back-office"
admin.site.site_title = "Casino back-office"
admin.site.index_title = "Operator console"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("wallets.urls")),
    path("api/v1/", include("compliance.urls")),
    path("api/v1/", include("payments.urls")),
    path("api/v1/", include("reconciliation.urls")),
]

if settings.SANDBOX_ENABLED:
    from payments.sandbox.cashier import cashier

    urlpatterns += [
        path("cashier/", cashier, name="cashier"),
        path("", RedirectView.as_view(pattern_name="cashier"), name="home"),
    ]
else:
    urlpatterns.append(path("", RedirectView.as_view(url="/admin/"), name="home"))
