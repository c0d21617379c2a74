"""The OpenAPI schema states every answer the API can give, not only each view's own.

Some answers come from layers every call passes through, whatever the view: input refused
(400), credentials (401), permissions (403), unknown ids (404), throttling (429, with
`Retry-After`) and dependency outages (503, with `Retry-After`). This schema class adds them,
in the one error shape, to every operation that does not describe them itself.
"""

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse

from inputs.rules import AMOUNT_PATTERN, SIGNED_AMOUNT_PATTERN


class AmountFieldSchema(OpenApiSerializerFieldExtension):
    """Amounts are strings of one shape; the schema says so (and schemathesis sends only that)."""

    target_class = "inputs.fields.AmountField"

    def map_serializer_field(self, auto_schema, direction):
        negative = self.target.allow_negative
        return {
            "type": "string",
            "pattern": SIGNED_AMOUNT_PATTERN if negative else AMOUNT_PATTERN,
            "example": "25.00",
        }


RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "Seconds to wait before retrying.",
    }
}

COMMON_ERRORS = {
    "400": "bad_request: a field, the body, the URL or a query parameter is invalid",
    "401": "not_authenticated: missing, invalid or expired credentials",
    "403": "permission_denied: the caller may not do this",
    "404": "not_found: no such object for this caller, or an unknown URL",
    "429": "throttled: too many requests (per player, casino server or game provider), or too "
    "many failed authentications from this address; `details.retry_after` and `Retry-After` "
    "say when to retry",
    "503": "service_unavailable: the database or the broker is unavailable; nothing was "
    "written; retry after `Retry-After` seconds with the same idempotency key or transaction id",
}


class ApiAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        from wallets.api import ErrorSerializer

        responses = super()._get_response_bodies(direction)
        for status_code, description in COMMON_ERRORS.items():
            if status_code not in responses:
                responses[status_code] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=description),
                    status_code,
                    direction=direction,
                )
            if status_code in ("429", "503"):
                responses[status_code].setdefault("headers", {}).update(RETRY_AFTER)
        return responses
