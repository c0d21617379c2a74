"""/api/schema/ and /api/docs/: open in the demo (API_DOCS_PUBLIC), otherwise for staff whose
session passed the second factor (or staff API tokens). Checked per request, not when the
URLs load, so one setting decides it everywhere."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import BasePermission

from staff.middleware import is_verified


class DocsReader(BasePermission):
    def has_permission(self, request, view):
        if settings.API_DOCS_PUBLIC:
            return True
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        # A staff API token has no session to verify; a session must have passed the second
        # factor (the middleware already made a half-logged-in session anonymous here).
        return request.auth is not None or is_verified(user)


class SchemaView(SpectacularAPIView):
    permission_classes = [DocsReader]


class SwaggerView(SpectacularSwaggerSplitView):
    """Swagger UI with its initialiser served as a script file (?script), so the page runs
    under a Content-Security-Policy without inline scripts."""

    permission_classes = [DocsReader]

    def permission_denied(self, request, message=None, code=None):
        # A person opening the docs page is sent to the console login, and back after it.
        raise _LoginRedirect(redirect_to_login(request.get_full_path(), reverse("admin:login")))

    def handle_exception(self, exc):
        if isinstance(exc, _LoginRedirect):
            return exc.response
        return super().handle_exception(exc)


class _LoginRedirect(Exception):
    def __init__(self, response):
        self.response = response
