from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class StaffConfig(AppConfig):
    default = True
    name = "staff"
    verbose_name = "Staff authentication"

    def ready(self):
        from . import signals  # noqa: F401


class StaffAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the console's site as `admin.site`: every app's
    `@admin.register` lands on a site that requires the second factor."""

    default = False
    default_site = "staff.sites.StaffAdminSite"
