"""Users in the console gain one action: a superuser resets a user's second factor (lost or
replaced phone, no recovery codes left). The user enrols again at their next login."""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django_otp import user_has_device

from wallets.admin_kit import ActionFormMixin

from . import services

User = get_user_model()


class ResetSecondFactorForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        help_text="Recorded in the user's history, e.g. the ticket of the lost-phone report.",
    )


class StaffUserAdmin(ActionFormMixin, UserAdmin):
    list_display = [*UserAdmin.list_display, "has_second_factor"]
    actions = ["reset_second_factor"]

    @admin.display(boolean=True, description="2FA")
    def has_second_factor(self, user) -> bool:
        return user_has_device(user, confirmed=True)

    def has_reset_second_factor_permission(self, request) -> bool:
        return request.user.is_superuser

    @admin.action(
        description="Reset two-factor authentication (enrol again at next login)",
        permissions=["reset_second_factor"],
    )
    def reset_second_factor(self, request, queryset):
        return self._with_form(
            request,
            queryset,
            form_class=ResetSecondFactorForm,
            title="Reset two-factor authentication",
            apply=lambda user, data: services.reset_second_factor(
                user=user, by=request.user, reason=data["reason"]
            ),
        )


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
