from django.contrib import admin
from django.urls import include, path
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
