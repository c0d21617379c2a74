"""The API against its own OpenAPI schema, fuzzed by schemathesis with valid credentials:
a player token for the player API, a staff token for the casino-server and staff APIs, and
HMAC signatures over the exact bytes for the game wallet. Every answer must be a non-5xx
that the schema documents (status code, content type, headers, body)."""

import json
import time

import pytest
import schemathesis
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.helpers import as_casino_server
from tests.compliance.factories import make_player
from tests.wallets.factories import fund
from tests.wallets.game_factories import make_provider
from wallets import game_services
from wallets.auth import issue_player_token

# Per operation; about 30 operations. Bounded so the whole suite stays well inside its budget
# on a 2-core machine; raise it locally (SCHEMATHESIS_MAX_EXAMPLES) for a deeper run.
MAX_EXAMPLES = int(__import__("os").environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _openapi() -> dict:
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


schema = schemathesis.openapi.from_dict(_openapi())
schema.app = get_wsgi_application()

STAFF_PREFIXES = ("/api/v1/reconciliation/", "/api/v1/game-wallet/sessions")
SIGNED_PREFIX = "/api/v1/game-wallet/"


@pytest.fixture
def _keep_test_connection():
    """The WSGI handler closes the database connection after each request, which would close
    the test's transaction; Django's own test client detaches the same handlers."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def callers(_keep_test_connection):
    player = make_player()
    fund(player, "500.00")
    studio = make_provider()
    server_token = as_casino_server(superuser=True)._credentials["HTTP_AUTHORIZATION"]
    unlimited = {
        scope: "1000000/minute" for scope in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    }
    with override_settings(
        REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": unlimited}
    ):
        yield {
            "player": player,
            "player_auth": f"Bearer {issue_player_token(player)}",
            "server_auth": server_token,
            "studio": studio,
        }


def _is_staff_call(path: str, method: str) -> bool:
    if path.startswith(STAFF_PREFIXES):
        return True
    # The casino server registers players and issues their tokens.
    return (path, method) in {
        ("/api/v1/players", "POST"),
        ("/api/v1/players/{external_id}/token", "POST"),
    }


@pytest.mark.django_db
@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case, callers):
    path, method = case.operation.path, case.method.upper()
    if "external_id" in (case.path_parameters or {}):
        # The caller's own player: random ids would only ever reach the 404 branch.
        case.path_parameters["external_id"] = callers["player"].external_id
    if path.startswith(SIGNED_PREFIX) and not path.startswith(STAFF_PREFIXES):
        raw = (
            b""
            if case.body is None or not isinstance(case.body, dict | list)
            else json.dumps(case.body).encode()
        )
        ts = str(int(time.time()))
        studio = callers["studio"]
        headers = {
            "Content-Type": "application/json",
            "X-Game-Key": studio.provider.key_id,
            "X-Game-Timestamp": ts,
            "X-Game-Signature": game_services.signature_for(
                secret=studio.secret, timestamp=ts, body=raw
            ),
        }
        case.call_and_validate(headers=headers, data=raw, checks=CHECKS)
        return
    auth = callers["server_auth"] if _is_staff_call(path, method) else callers["player_auth"]
    case.call_and_validate(
        headers={"Authorization": auth, "Idempotency-Key": f"st-{time.monotonic_ns()}"},
        checks=CHECKS,
    )
