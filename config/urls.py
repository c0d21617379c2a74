from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from .api_docs import SchemaView, SwaggerView

# admin.site is the console's StaffAdminSite (staff/sites.py): every page needs the second factor.

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(url_name="schema"), name="api-docs"),
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
