"""The production profile, as a fresh process sees it: settings load once per process, so each
case runs manage.py with exactly the environment a deployment would have."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]
# What the test run sets (pytest-env, the Makefile) must not leak into "production".
PROFILE_VARIABLES = {
    "DEPLOY_PROFILE",
    "SANDBOX_ENABLED",
    "API_DOCS_PUBLIC",
    "DEBUG",
    "SECRET_KEY",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    # Set by the browser tests' fixture for Playwright's event loop; never in a deployment.
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}


def manage(*args, **env):
    base = {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES}
    base.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(  # noqa: S603 -- our own manage.py, fixed arguments
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def production(**env):
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "backoffice.example.com",
        **env,
    }


def test_check_deploy_is_clean_in_the_production_profile():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production())
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_warns_in_the_local_profile():
    """The same check fails the demo's http settings: the test above can fail."""
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", **production(DEPLOY_PROFILE="local")
    )
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_production_refuses_to_start_without_its_own_secret_key():
    result = manage("check", ALLOWED_HOSTS="backoffice.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEPLOY_PROFILE=production" in result.stderr


def test_an_unknown_profile_is_refused():
    result = manage("check", **production(DEPLOY_PROFILE="staging"))
    assert result.returncode != 0
    assert "DEPLOY_PROFILE must be production or local" in result.stderr


SHOW = (
    "from django.conf import settings as s; print(s.SANDBOX_ENABLED, s.API_DOCS_PUBLIC, "
    "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, "
    "s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER, "
    "'upgrade-insecure-requests' in s.CONTENT_SECURITY_POLICY['DIRECTIVES'])"
)


def test_production_defaults_sandbox_off_docs_closed_https_only():
    result = manage("shell", "-c", SHOW, **production())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == (
        "False False True 31536000 True True ('HTTP_X_FORWARDED_PROTO', 'https') True"
    )


def test_the_sandbox_is_on_only_when_enabled():
    urls = "from django.urls import reverse; print(reverse('cashier'))"
    off = manage("shell", "-c", urls, **production())
    assert off.returncode != 0 and "NoReverseMatch" in off.stderr
    on = manage("shell", "-c", urls, **production(SANDBOX_ENABLED="true"))
    assert on.returncode == 0, on.stderr
    assert on.stdout.strip().endswith("/cashier/")


# --- served responses under the profile's headers -----------------------------------------


@pytest.mark.django_db
def test_every_page_carries_the_content_security_policy(client):
    response = client.get("/admin/login/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
@override_settings(
    SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")
)
def test_behind_the_proxy_http_redirects_and_forwarded_https_is_served(client):
    plain = client.get("/admin/login/")
    assert plain.status_code == 301
    assert plain["Location"] == "https://testserver/admin/login/"
    forwarded = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
    assert forwarded.status_code == 200


@pytest.mark.django_db
@override_settings(API_DOCS_PUBLIC=False)
def test_api_docs_are_for_verified_staff_in_production(client, django_user_model):
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 401
    assert json.loads(schema.content)["error"]["code"] == "not_authenticated"
    docs = client.get("/api/docs/")
    assert docs.status_code == 302
    assert docs["Location"] == "/admin/login/?next=/api/docs/"

    player_side = django_user_model.objects.create_user("not-staff", password="x-long-pass-1")
    client.force_login(player_side)
    assert client.get("/api/schema/").status_code == 403

    staff = django_user_model.objects.create_user("staff", password="x-long-pass-1", is_staff=True)
    client.force_login_password_only(staff)
    assert client.get("/api/schema/").status_code in (401, 403)
    assert client.get("/api/docs/")["Location"].startswith("/admin/2fa/enrol/")

    client.force_login(staff)
    assert client.get("/api/schema/").status_code == 200
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert "/api/docs/?script=" in page.text
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")


@pytest.mark.django_db
@override_settings(API_DOCS_PUBLIC=True)
def test_api_docs_are_open_in_the_demo(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
