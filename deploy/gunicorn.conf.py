"""gunicorn for the back-office behind deploy/nginx/casino-backoffice.conf (docs/deploy.md).

    gunicorn -c deploy/gunicorn.conf.py config.wsgi

Every value can be changed from the environment (GUNICORN_*), so one file serves each host.
"""

import multiprocessing
import os


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# Only nginx talks to gunicorn: a unix socket nobody else can reach, which is also why Django
# may trust the X-Real-IP and X-Forwarded-Proto headers nginx sets (config/settings.py).
bind = os.environ.get("GUNICORN_BIND", "unix:/run/casino/gunicorn.sock")
umask = 0o007  # the socket: owner and group (nginx's group) only

# Sync workers: every request holds a database transaction briefly and waits on providers with
# short timeouts; nginx buffers slow clients so a worker never waits on one.
workers = _env_int("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1)
worker_class = "sync"
# A request longer than this is killed: provider calls time out well within it
# (PAYMENTS_PROVIDER_TIMEOUT_SECONDS); nginx's proxy_read_timeout is a little longer.
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
# Recycle workers now and then so a slow leak never becomes an outage; jitter spreads them.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 200)

# Request limits before Django sees anything (nginx enforces the body sizes).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Logs to stdout/stderr for the service manager; the request id nginx generates ties a log line
# to nginx's own access log.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}i)s'
proc_name = "casino-backoffice"
# Django opens database connections lazily in each worker; nothing is shared by preloading.
preload_app = False
