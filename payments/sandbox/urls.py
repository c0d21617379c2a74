from django.urls import path, re_path

from . import views

urlpatterns = [
    re_path(
        r"^sandbox/(?P<code>[-\w]+)/v1/(?P<collection>payments|payouts|refunds)$",
        views.card_objects,
        name="sandbox-card-objects",
    ),
    path("sandbox/<slug:code>/3ds/<str:sandbox_id>", views.card_3ds, name="sandbox-card-3ds"),
    re_path(
        r"^sandbox/(?P<code>[-\w]+)/(?P<action>payment|transfer|refund|query)$",
        views.ewallet_api,
        name="sandbox-ewallet-api",
    ),
    path("sandbox/<slug:code>/app", views.ewallet_page, name="sandbox-ewallet-page"),
    path("sandbox/<slug:code>/ob/oauth/token", views.ob_token, name="sandbox-ob-token"),
    re_path(
        r"^sandbox/(?P<code>[-\w]+)/ob/v1/(?P<collection>payments|payouts|refunds)$",
        views.ob_objects,
        name="sandbox-ob-objects",
    ),
    path(
        "sandbox/<slug:code>/ob/consent/<str:sandbox_id>",
        views.ob_consent,
        name="sandbox-ob-consent",
    ),
    re_path(
        r"^sandbox/(?P<code>[-\w]+)/api/v1/stores/(?P<store>[-\w]+)/(?P<collection>invoices|payouts)$",
        views.crypto_objects,
        name="sandbox-crypto-objects",
    ),
    path(
        "sandbox/<slug:code>/i/<str:sandbox_id>",
        views.crypto_invoice_page,
        name="sandbox-crypto-invoice",
    ),
]
