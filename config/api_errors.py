"""One JSON error shape for the whole API: {"error": {"code", "message", "details"}}.

Also where faults become answers a client can act on:
- a database or broker outage (and a lock or statement timeout) is 503 `service_unavailable`
  with `Retry-After`: nothing was half-written, because every money service runs in one
  transaction, and a retry with the same idempotency key or transaction id is safe;
- throttling is 429 `throttled` with `Retry-After` and `details.retry_after`;
- a failed authentication is counted against the client address (config/throttles.py).
"""

import logging
import math

import kombu.exceptions
import redis.exceptions
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from wallets.errors import DomainError

logger = logging.getLogger(__name__)

_CODES = {
    exceptions.ValidationError: "bad_request",
    exceptions.ParseError: "bad_request",
    exceptions.AuthenticationFailed: "not_authenticated",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}

# What a dependency outage looks like from inside a request: PostgreSQL gone or restarting
# (psycopg2's errors arrive as Django's OperationalError / InterfaceError), the Celery broker
# unreachable when a task is published, the cache (throttle counters) unreachable.
UNAVAILABLE = (
    OperationalError,
    InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

AUTH_FAILURES = (exceptions.AuthenticationFailed, exceptions.NotAuthenticated)


def error_body(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(code: str, message: str, details=None, http_status=400, headers=None):
    return Response(error_body(code, message, details), status=http_status, headers=headers)


def service_unavailable_body() -> tuple[dict, dict]:
    """The 503 body and headers, shared by the DRF handler and the middleware."""
    seconds = settings.API_RETRY_AFTER_SECONDS
    body = error_body(
        "service_unavailable",
        "A service this call needs is unavailable; nothing was written. Retry later with the "
        "same idempotency key or transaction id.",
        {"retry_after": seconds},
    )
    return body, {"Retry-After": str(seconds)}


def is_auth_failure(exc) -> bool:
    if isinstance(exc, AUTH_FAILURES):
        return True
    return isinstance(exc, DomainError) and exc.code == "invalid_signature"


def exception_handler(exc, context):
    request = context.get("request")
    if request is not None and is_auth_failure(exc):
        from .throttles import AuthFailureThrottle

        try:
            AuthFailureThrottle().record(request)
        except UNAVAILABLE:
            logger.warning("Could not count a failed authentication: cache unavailable.")
    if isinstance(exc, UNAVAILABLE):
        logger.error("Service unavailable during an API call: %r", exc)
        body, headers = service_unavailable_body()
        return Response(body, status=503, headers=headers)
    if isinstance(exc, DataError):
        # Input that reached the database unvalidated (a value out of a column's range): the
        # client's fault, so a 400, but a gap in our validation, so logged loudly.
        logger.error("Unvalidated input reached the database: %r", exc)
        return error_response("bad_request", "A value is out of range for storage.")
    if isinstance(exc, DomainError):
        return error_response(exc.code, exc.message, exc.details, exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        message, details = "The request is invalid.", response.data
    elif isinstance(exc, exceptions.Throttled):
        retry_after = max(1, math.ceil(exc.wait or 1))
        message, details = "Too many requests; retry later.", {"retry_after": retry_after}
        response["Retry-After"] = str(retry_after)
    else:
        message, details = str(exc.detail), {}
    headers = {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After")}
    return error_response(code, message, details, response.status_code, headers)
