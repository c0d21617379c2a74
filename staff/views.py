"""The second step of a console login, enrolment of an authenticator app, and the page where
a staff member replaces their authenticator or recovery codes."""

from functools import wraps

import segno
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off, get_lockout_response
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import logout
from django.contrib.auth.signals import user_login_failed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django_otp import login as otp_login

from . import services, signals
from .forms import CodeForm
from .middleware import is_verified


def staff_session_required(view):
    """A session past the password step of an active staff member; anyone else logs in."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect(f"{reverse('admin:login')}?next={reverse('admin:index')}")
        if not (user.is_active and user.is_staff):
            logout(request)
            return redirect("admin:login")
        credentials = {"username": user.get_username()}
        if AxesProxyHandler.is_locked(request, credentials):
            logout(request)
            return get_lockout_response(request, None, credentials)
        return view(request, *args, **kwargs)

    return never_cache(wrapper)


@staff_session_required
def verify(request):
    user = request.user
    if is_verified(user):
        return redirect(_next_url(request))
    if services.confirmed_authenticator(user=user) is None:
        return redirect(f"{reverse('admin:staff_enrol')}?{request.GET.urlencode()}")
    form = CodeForm(request.POST or None)
    if form.is_bound and form.is_valid():
        check = services.check_second_factor(user=user, code=form.cleaned_data["code"])
        if check.device is not None:
            return _finish_login(request, check.device)
        refused = _count_failure(request)
        if refused is not None:
            return refused
        if check.retry_after_seconds:
            form.add_error(
                "code",
                f"Too many wrong codes: wait {check.retry_after_seconds} seconds, then try "
                "the code your app shows then.",
            )
        else:
            form.add_error(
                "code",
                "That code is not valid. Enter the current 6-digit code "
                "from your authenticator app, or one of your recovery codes.",
            )
    return _render(request, "admin/staff/verify.html", "Two-factor authentication", form=form)


@staff_session_required
def enrol(request):
    """Enrol an authenticator: scan the QR code (or type the key), confirm a code it shows,
    then read the recovery codes, which are shown this once. A user who already has an
    authenticator must pass the second factor with it before replacing it."""
    user = request.user
    replacing = is_verified(user)
    if not replacing and services.confirmed_authenticator(user=user) is not None:
        return redirect(f"{reverse('admin:staff_verify')}?{request.GET.urlencode()}")
    device = services.pending_authenticator(user=user)
    form = CodeForm(request.POST or None)
    if form.is_bound and form.is_valid():
        codes = services.confirm_authenticator(device=device, code=form.cleaned_data["code"])
        if codes is not None:
            _finish_login(request, device)
            return _render(
                request,
                "admin/staff/recovery_codes.html",
                "Your recovery codes",
                codes=codes,
                next_url=_next_url(request),
            )
        form.add_error(
            "code",
            "That code does not match. Check the time on your phone, then enter the code the "
            "app shows now.",
        )
    uri = device.config_url
    secret = uri.split("secret=", 1)[1].split("&", 1)[0]
    return _render(
        request,
        "admin/staff/enrol.html",
        "Replace your authenticator app" if replacing else "Set up two-factor authentication",
        form=form,
        otpauth_uri=uri,
        qr_svg=segno.make(uri, error="m").svg_inline(scale=5, border=2),
        secret_groups=[secret[i : i + 4] for i in range(0, len(secret), 4)],
        replacing=replacing,
    )


@never_cache
def security(request):
    """Two-factor settings of the signed-in staff member (admin_view: verified sessions only)."""
    user = request.user
    form = CodeForm(request.POST or None)
    if form.is_bound and form.is_valid():
        # New recovery codes need a current code: a session left open is not enough.
        check = services.check_second_factor(user=user, code=form.cleaned_data["code"])
        if check.device is not None:
            return _render(
                request,
                "admin/staff/recovery_codes.html",
                "Your new recovery codes",
                codes=services.issue_recovery_codes(user=user),
                next_url=reverse("admin:staff_security"),
            )
        refused = _count_failure(request)
        if refused is not None:
            return refused
        form.add_error("code", "That code is not valid.")
    return _render(
        request,
        "admin/staff/security.html",
        "Two-factor authentication",
        form=form,
        authenticator=services.confirmed_authenticator(user=user),
        codes_left=services.recovery_codes_left(user=user),
    )


def _finish_login(request, device):
    otp_login(request, device)
    # A new session key for the stronger session: one seen before this point is worth nothing.
    request.session.cycle_key()
    request.session[signals.VERIFIED_WITH] = device.persistent_id
    # Both factors passed: clear this user's failures (a password alone does not, see settings).
    AxesProxyHandler.reset_attempts(username=request.user.get_username())
    return redirect(_next_url(request))


def _count_failure(request):
    """A wrong second-factor code is a failed login for django-axes, like a wrong password;
    at the limit the session ends and the lockout page answers."""
    credentials = {"username": request.user.get_username()}
    user_login_failed.send(sender=__name__, credentials=credentials, request=request)
    if getattr(request, "axes_locked_out", False) or AxesProxyHandler.is_locked(
        request, credentials
    ):
        logout(request)
        request.axes_locked_out = False  # answered here; AxesMiddleware need not answer again
        return get_lockout_response(request, None, credentials)
    return None


def _next_url(request) -> str:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return reverse("admin:index")


def _render(request, template, title, **context):
    return TemplateResponse(
        request,
        template,
        {
            **admin.site.each_context(request),
            "title": title,
            "next_url": _next_url(request),
            **context,
        },
    )


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE): a page that says
    what happened and for how long, status 429 with Retry-After."""
    cool_off = get_cool_off(request)
    response = TemplateResponse(
        request,
        "admin/staff/locked_out.html",
        {
            **admin.site.each_context(request),
            "title": "Login locked",
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "username": get_client_username(request, credentials) or "",
            "cooloff_minutes": int(cool_off.total_seconds() // 60) if cool_off else 0,
        },
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )
    if cool_off:
        response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response.render()
