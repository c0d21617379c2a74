from django.urls import include, path

from .protocols import PROTOCOL_MODULES

urlpatterns = [
    path(f"sandbox/{protocol}/<slug:code>/", include(module))
    for protocol, module in PROTOCOL_MODULES.items()
]
