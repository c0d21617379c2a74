"""Pieces every app's operator console shares. They live in wallets, the app every other app
may import, so the console behaves the same wherever an operator works."""

from django.contrib import admin, messages
from django.template.response import TemplateResponse

from .errors import DomainError


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only services write: ledger, payments, audit trails."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ActionFormMixin:
    """Admin actions that ask for input (a reason, an amount) before calling a service."""

    def describe_for_action(self, obj) -> str:
        """How a selected row is listed on the confirmation page."""
        return str(obj)

    def _with_form(self, request, queryset, *, form_class, title, apply):
        """Show `form_class` for the selected rows; on submit call `apply(obj, data)` for each
        and report each outcome: a refused row does not stop the others."""
        form = form_class(request.POST if "apply" in request.POST else None)
        if not (form.is_bound and form.is_valid()):
            return TemplateResponse(
                request,
                "admin/action_form.html",
                {
                    **self.admin_site.each_context(request),
                    "title": title,
                    "form": form,
                    "rows": [(obj.pk, self.describe_for_action(obj)) for obj in queryset],
                    "action": request.POST.get("action"),
                    "opts": self.model._meta,
                },
            )
        name = self.model._meta.verbose_name.capitalize()
        for obj in queryset:
            try:
                apply(obj, form.cleaned_data)
            except DomainError as exc:
                self.message_user(request, f"{name} {obj}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{name} {obj}: done.", messages.SUCCESS)
        return None
