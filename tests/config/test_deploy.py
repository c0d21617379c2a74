"""deploy/: the nginx site is valid nginx and agrees with the settings; gunicorn's config loads."""

import datetime
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "casino-backoffice.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def locations(site: str) -> dict[str, str]:
    return dict(re.findall(r"location\s+(\S+)\s*\{([^}]*)\}", site))


def test_nginx_refuses_webhook_bodies_over_the_settings_limit():
    site = SITE.read_text()
    webhook = locations(site)["/api/v1/payments/webhooks/"]
    size = re.search(r"client_max_body_size\s+(\d+)k;", webhook)
    assert size, "the webhook location sets its own body limit"
    assert int(size.group(1)) * 1024 == settings.PAYMENTS_WEBHOOK_MAX_BODY_BYTES
    assert "proxy_pass http://casino_backoffice;" in webhook
    # Everywhere else a small default; the route the webhook URLs come from is the same prefix.
    assert re.search(r"^\s*client_max_body_size 1m;", site, re.M)
    from django.urls import reverse

    assert reverse("payments-webhook", args=["stripe"]).startswith("/api/v1/payments/webhooks/")


def test_nginx_sets_the_headers_django_trusts_and_never_appends_them():
    site = SITE.read_text()
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in site
    assert "proxy_set_header X-Real-IP         $remote_addr;" in site
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in site
    assert "return 301 https://$host$request_uri;" in site
    assert locations(site)["/media/"].strip() == "return 404;"


def test_the_nginx_site_passes_nginx_t(tmp_path):
    cert, key = _self_signed(tmp_path)
    site = SITE.read_text()
    site = site.replace(
        "/etc/letsencrypt/live/backoffice.example.com/fullchain.pem", str(cert)
    ).replace("/etc/letsencrypt/live/backoffice.example.com/privkey.pem", str(key))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n"
    )
    result = subprocess.run(  # noqa: S603 -- nginx with our own config
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_gunicorn_config_loads_the_application():
    env = {
        **os.environ,
        "DEPLOY_PROFILE": "production",
        "SECRET_KEY": "k" * 20 + "-a-test-key-with-enough-distinct-characters-0123456789",
        "GUNICORN_BIND": "127.0.0.1:0",
    }
    result = subprocess.run(  # noqa: S603 -- our own gunicorn config
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "--check-config",
            "-c",
            "deploy/gunicorn.conf.py",
            "config.wsgi",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _self_signed(folder: Path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backoffice.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
