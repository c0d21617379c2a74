"""Two gates every request passes after authentication.

SessionExpiryMiddleware ends a session that has been idle too long or is older than its
absolute age. SecondFactorMiddleware makes a session that has only passed the password step
worth nothing but the pages that finish logging in: a console or cashier page redirects to
the second-factor page, and the API sees an anonymous user (DRF's session authentication
reads the user this middleware leaves on the request).
"""

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.models import AnonymousUser
from django.shortcuts import redirect
from django.urls import reverse

from . import signals

# Seen-at is written at most this often: an idle limit is exact to within it, and a burst of
# requests does not write the session on every one.
SEEN_AT_RESOLUTION_SECONDS = 30


def is_verified(user) -> bool:
    is_verified = getattr(user, "is_verified", None)
    return bool(user.is_authenticated and is_verified is not None and is_verified())


def is_api_path(path: str) -> bool:
    """JSON endpoints: an expired or half-logged-in session makes them anonymous instead of
    redirecting. The Swagger UI page is a page a person opens, so it redirects."""
    return path.startswith("/api/") and not path.startswith(reverse("api-docs"))


def login_redirect(request, message: str = ""):
    if message:
        messages.warning(request, message)
    query = urlencode({"next": request.get_full_path()}) if request.method == "GET" else ""
    return redirect(f"{reverse('admin:login')}{'?' + query if query else ''}")


class SessionExpiryMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            expired = self._expired_because(request)
            if expired:
                logout(request)
                if not is_api_path(request.path):
                    return login_redirect(request, expired)
        return self.get_response(request)

    @staticmethod
    def _expired_because(request) -> str:
        session = request.session
        now = int(time.time())
        # A session without the clocks predates them: treat it as expired, log in again.
        logged_in_at = session.get(signals.LOGGED_IN_AT, 0)
        last_seen_at = session.get(signals.LAST_SEEN_AT, 0)
        if now - logged_in_at >= settings.SESSION_ABSOLUTE_AGE_SECONDS:
            hours = settings.SESSION_ABSOLUTE_AGE_SECONDS / 3600
            return f"Your session reached its maximum age of {hours:g} hours. Log in again."
        if now - last_seen_at >= settings.SESSION_IDLE_TIMEOUT_SECONDS:
            minutes = settings.SESSION_IDLE_TIMEOUT_SECONDS / 60
            return f"Your session ended after {minutes:g} minutes without activity. Log in again."
        if now - last_seen_at >= SEEN_AT_RESOLUTION_SECONDS:
            session[signals.LAST_SEEN_AT] = now
        return ""


class SecondFactorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and not is_verified(user):
            if request.session.get(signals.VERIFIED_WITH):
                # It was verified and its device is gone: a superuser reset this user's second
                # factor. Start again from the password, not straight at enrolment.
                logout(request)
                if is_api_path(request.path):
                    return self.get_response(request)
                return login_redirect(
                    request, "Your two-factor authentication was reset. Log in again."
                )
            if request.path not in _finishing_login_paths():
                if is_api_path(request.path):
                    request.user = AnonymousUser()
                else:
                    return redirect_to_second_factor(request)
        return self.get_response(request)


def _finishing_login_paths() -> set[str]:
    return {
        reverse("admin:login"),
        reverse("admin:logout"),
        reverse("admin:staff_verify"),
        reverse("admin:staff_enrol"),
    }


def redirect_to_second_factor(request):
    from .services import confirmed_authenticator

    has_authenticator = confirmed_authenticator(user=request.user) is not None
    target = reverse("admin:staff_verify" if has_authenticator else "admin:staff_enrol")
    next_url = request.get_full_path() if request.method == "GET" else reverse("admin:index")
    return redirect(f"{target}?{urlencode({'next': next_url})}")
