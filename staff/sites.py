from django.contrib import admin
from django.urls import path

from .middleware import is_verified


class StaffAdminSite(admin.AdminSite):
    """The operator console. Django's password login is the first step; a page needs a session
    that also passed the second factor (SecondFactorMiddleware sends it there first, and this
    check stands behind it for every admin view)."""

    site_header = "Casino payments back-office"
    site_title = "Casino back-office"
    index_title = "Operator console"

    def has_permission(self, request):
        return super().has_permission(request) and is_verified(request.user)

    def get_urls(self):
        from . import views

        return [
            path("2fa/verify/", views.verify, name="staff_verify"),
            path("2fa/enrol/", views.enrol, name="staff_enrol"),
            path("2fa/", self.admin_view(views.security), name="staff_security"),
            *super().get_urls(),
        ]
