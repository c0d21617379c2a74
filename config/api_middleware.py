"""The API's outer guard, for everything under /api/ that DRF's exception handler cannot see.

1. A URL path or query string carrying a control character (NUL above all: PostgreSQL cannot
   store it) is a 400 before any view runs.
2. An address that spent its budget of failed authentications gets 429 before any credential
   is checked (config/throttles.py).
3. A database or broker outage raised outside a DRF view (the providers' webhook endpoint) is
   503 `service_unavailable` with `Retry-After`, like inside one (config/api_errors.py).
4. Every error answer is JSON in the one error shape: Django's own HTML pages (an unknown URL,
   a non-integer id in a detail URL, a method a plain view does not take, a body too large)
   are rewritten.
"""

import unicodedata

from django.http import JsonResponse

from .api_errors import UNAVAILABLE, error_body, service_unavailable_body

API_PREFIX = "/api/"

_STATUS_CODES = {
    400: ("bad_request", "The request is invalid."),
    401: ("not_authenticated", "Authentication credentials were not provided."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Unsupported media type."),
    429: ("throttled", "Too many requests; retry later."),
}


def _has_control_character(text: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cs") for char in text)


class ApiGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        refused = self._refuse_unstorable_url(request) or self._refuse_locked_out(request)
        response = refused or self.get_response(request)
        return self._as_json_error(response)

    @staticmethod
    def _refuse_unstorable_url(request):
        in_query = any(
            _has_control_character(key) or any(_has_control_character(v) for v in values)
            for key, values in request.GET.lists()
        )
        if _has_control_character(request.path) or in_query:
            body = error_body(
                "bad_request", "The URL contains a control character (e.g. NUL); refused."
            )
            return JsonResponse(body, status=400)
        return None

    @staticmethod
    def _refuse_locked_out(request):
        from .throttles import AuthFailureThrottle

        try:
            wait = AuthFailureThrottle().wait_before_next(request)
        except UNAVAILABLE:
            body, headers = service_unavailable_body()
            return JsonResponse(body, status=503, headers=headers)
        if wait is None:
            return None
        body = error_body(
            "throttled",
            "Too many failed authentications from this address; retry later.",
            {"retry_after": wait},
        )
        return JsonResponse(body, status=429, headers={"Retry-After": str(wait)})

    def process_exception(self, request, exception):
        if request.path.startswith(API_PREFIX) and isinstance(exception, UNAVAILABLE):
            body, headers = service_unavailable_body()
            return JsonResponse(body, status=503, headers=headers)
        return None

    @staticmethod
    def _as_json_error(response):
        if response.status_code < 400 or getattr(response, "streaming", False):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        code, message = _STATUS_CODES.get(
            response.status_code,
            ("server_error" if response.status_code >= 500 else "error", "Request failed."),
        )
        rewritten = JsonResponse(error_body(code, message), status=response.status_code)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                rewritten[header] = response[header]
        return rewritten
