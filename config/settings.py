"""All settings come from the environment (12-factor); the defaults run the one-command demo.

Demo: SQLite, eager Celery tasks, the sandbox providers on.
Tests and production: set DATABASE_URL to PostgreSQL and CELERY_BROKER_URL to Redis.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# "production" (the default: HTTPS behind the proxy in deploy/, see docs/deploy.md) or "local"
# (plain http on 127.0.0.1: `make demo` and the tests set it). Secure unless told otherwise.
DEPLOY_PROFILE = env.str("DEPLOY_PROFILE", default="production")
if DEPLOY_PROFILE not in ("production", "local"):
    raise ImproperlyConfigured(
        f"DEPLOY_PROFILE must be production or local, not {DEPLOY_PROFILE!r}"
    )
IS_PRODUCTION = DEPLOY_PROFILE == "production"

DEBUG = env.bool("DEBUG", default=False)
if IS_PRODUCTION and "SECRET_KEY" not in env:
    # The key signs sessions and player tokens; the repository's demo key is public.
    raise ImproperlyConfigured("SECRET_KEY must be set when DEPLOY_PROFILE=production.")
SECRET_KEY = env.str("SECRET_KEY", default="insecure-demo-key-set-SECRET_KEY-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The console's admin site requires the second factor (staff/sites.py).
    "staff.apps.StaffAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "csp",
    "staff",
    "wallets",
    "compliance",
    "payments",
    "reconciliation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # /api/: control characters in URLs, auth-failure lockout, 503 on outages, JSON errors.
    "config.api_middleware.ApiGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # request.user.is_verified(): has this session passed a second factor?
    "django_otp.middleware.OTPMiddleware",
    # Idle and absolute session limits, then: no second factor, no console (staff/middleware.py).
    "staff.middleware.SessionExpiryMiddleware",
    "staff.middleware.SecondFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Provider and callback URLs typed without a scheme are https, as Django 6 will assume.
FORMS_URLFIELD_ASSUME_HTTPS = True

# django-axes first: it refuses a locked-out user or address before a password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "admin:login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- staff console: second factor, lockout, sessions (docs/staff-auth.md) -----------------

# Every staff session must pass a TOTP code or a recovery code before any console page
# (staff/middleware.py). The issuer is the name authenticator apps show next to the code.
OTP_TOTP_ISSUER = env.str("STAFF_OTP_ISSUER", default="Casino back-office")
# Wrong codes slow the device down exponentially (1 s, 2 s, 4 s, ...) on top of the lockout.
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
# Recovery codes issued at enrolment (each works once).
STAFF_RECOVERY_CODE_COUNT = env.int("STAFF_RECOVERY_CODE_COUNT", default=10)

# django-axes: this many failed passwords or second-factor codes for one username, or from one
# client address, lock that username or address out for the cool-off period (429 and a page
# that says so). Failures older than the cool-off are forgotten.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A correct password alone must not clear the failures (or a stolen password would reset the
# count of guessed codes); staff/views.py clears them once both factors have passed.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "staff.views.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# The client address is wallets/client_ip.py's, for the lockout as for everything else
# (CLIENT_IP_TRUSTED_PROXIES / CLIENT_IP_HEADER below).
AXES_CLIENT_IP_CALLABLE = "wallets.client_ip.client_ip"

# Sessions: the cookie dies with the browser, after SESSION_ABSOLUTE_AGE_SECONDS from the
# password step whatever happens, and after SESSION_IDLE_TIMEOUT_SECONDS without a request.
SESSION_IDLE_TIMEOUT_SECONDS = env.int("SESSION_IDLE_TIMEOUT_SECONDS", default=15 * 60)
SESSION_ABSOLUTE_AGE_SECONDS = env.int("SESSION_ABSOLUTE_AGE_SECONDS", default=8 * 60 * 60)
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_AGE_SECONDS
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# --- production profile (docs/deploy.md) -------------------------------------------------

# Behind deploy/nginx: TLS ends at nginx, which sets X-Forwarded-Proto (and overwrites any the
# client sent), so Django knows the request was https.
if env.bool("SECURE_PROXY_SSL_HEADER", default=IS_PRODUCTION):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=IS_PRODUCTION)
# Health probes from inside the network may speak plain http (regexes, no leading slash).
SECURE_REDIRECT_EXEMPT = env.list("SECURE_REDIRECT_EXEMPT", default=[r"^health/"])
SECURE_HSTS_SECONDS = env.int(
    "SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if IS_PRODUCTION else 0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=IS_PRODUCTION)
# The header only allows preloading; the domain joins browsers' lists only when submitted.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=IS_PRODUCTION)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=IS_PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=IS_PRODUCTION)
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): scripts only from our own static files, so an injected
# <script> or on* attribute does not run. The admin and Swagger UI (drf-spectacular-sidecar,
# its initialiser served as a file by SpectacularSwaggerSplitView) need nothing more. Styles
# allow inline attributes: admin templates (ours and the apps') set style="..."; CSS cannot
# run code. data: images are Swagger UI's icons.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        **({"upgrade-insecure-requests": True} if IS_PRODUCTION else {}),
    },
}

# /api/docs/ and /api/schema/: staff who passed the second factor, unless this is on (the demo).
API_DOCS_PUBLIC = env.bool("API_DOCS_PUBLIC", default=False)

# --- API -----------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "wallets.auth.PlayerTokenAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies only (amounts as strings, booleans as JSON booleans); the upload endpoints
    # take multipart. Both refuse NUL and lone surrogates anywhere (inputs/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["inputs.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "config.api_schema.ApiAutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "config.api_errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # Throttles (config/throttles.py), counted in the default cache: per player, per casino
    # server user, per game provider, and failed authentications per client address.
    "DEFAULT_THROTTLE_CLASSES": [
        "config.throttles.PlayerRateThrottle",
        "config.throttles.CasinoServerRateThrottle",
        "config.throttles.GameProviderRateThrottle",
    ],
    # "<count>/<second|minute|hour|day>"; see docs/api.md for what each protects.
    "DEFAULT_THROTTLE_RATES": {
        "player": env.str("API_THROTTLE_PLAYER", default="120/minute"),
        "casino_server": env.str("API_THROTTLE_CASINO_SERVER", default="3000/minute"),
        "game_provider": env.str("API_THROTTLE_GAME_PROVIDER", default="60000/minute"),
        "auth_failure": env.str("API_THROTTLE_AUTH_FAILURE", default="30/minute"),
    },
}
# The Retry-After a 503 (database or broker unavailable) carries, in seconds.
API_RETRY_AFTER_SECONDS = env.int("API_RETRY_AFTER_SECONDS", default=5)

# The cache holds the throttle counters. CACHE_URL (or REDIS_URL), e.g.
# redis://127.0.0.1:6379/1, in production, so every worker process counts against the same
# budget; neither set, a per-process local-memory cache, which is enough for the demo.
_CACHE_URL = env.str("CACHE_URL", default="") or env.str("REDIS_URL", default="")
CACHES = {
    "default": env.cache_url_config(_CACHE_URL)
    if _CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Casino payments back-office API",
    "DESCRIPTION": (
        "Player wallets, statements and the casino-server API. Errors are JSON: "
        '`{"error": {"code": "...", "message": "...", "details": {...}}}` with a stable code.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Tags come from the path after /api/v1/: deposits, game-wallet, players, ...
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Player API tokens are signed (no table) and short-lived; see wallets/auth.py.
PLAYER_TOKEN_TTL_SECONDS = env.int("PLAYER_TOKEN_TTL_SECONDS", default=15 * 60)

# --- Celery --------------------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
# No broker configured means the demo: run tasks in-process so nothing needs a worker.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="casino")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# --- Ledger --------------------------------------------------------------------------------

# How often the beat job folds pending system-account deltas into their balances.
LEDGER_ROLLUP_INTERVAL_SECONDS = env.int("LEDGER_ROLLUP_INTERVAL_SECONDS", default=10)
# On PostgreSQL an entry is written in one statement (see wallets/services.py); off, it takes
# the portable statement-by-statement path the SQLite demo uses. The tests run both.
LEDGER_SINGLE_STATEMENT_POSTING = env.bool("LEDGER_SINGLE_STATEMENT_POSTING", default=True)

# --- compliance ---------------------------------------------------------------------------

# The OFAC SDN snapshot is vendored in data/ofac/ (public domain; its README gives source and
# date); `import_sanctions --dir` loads a newer list from elsewhere.
OFAC_DATA_DIR = env.path("OFAC_DATA_DIR", default=BASE_DIR / "data" / "ofac")
# Name-match score (0..1) at or above which a player is a screening hit (yente's default).
COMPLIANCE_SCREENING_THRESHOLD = env.float("COMPLIANCE_SCREENING_THRESHOLD", default=0.70)
COMPLIANCE_DEFAULT_MINIMUM_AGE = env.int("COMPLIANCE_DEFAULT_MINIMUM_AGE", default=18)
# Jurisdictions whose gambling age is above the default (ISO 3166-1 alpha-2 -> years).
COMPLIANCE_MINIMUM_AGE_BY_COUNTRY = env.json(
    "COMPLIANCE_MINIMUM_AGE_BY_COUNTRY", default={"BE": 21, "EE": 21, "GR": 21}
)
# Residence or IP country in this list: no deposits. An empty allowed list allows the rest.
COMPLIANCE_BLOCKED_COUNTRIES = env.list(
    "COMPLIANCE_BLOCKED_COUNTRIES", default=["US", "FR", "KP", "IR", "CU", "SY"]
)
COMPLIANCE_ALLOWED_COUNTRIES = env.list("COMPLIANCE_ALLOWED_COUNTRIES", default=[])
# Compliance thresholds are in EUR; amounts in other currencies are compared at these
# reference rates (EUR per unit), which only decide which checks apply, never move money.
COMPLIANCE_EUR_RATES = env.json(
    "COMPLIANCE_EUR_RATES",
    default={
        "EUR": "1",
        "USD": "0.92",
        "GBP": "1.17",
        "JPY": "0.0062",
        "BTC": "60000",
        "ETH": "3000",
        "USDT": "0.92",
    },
)
# KYC level "basic" (database check) allows deposits up to this lifetime total, in EUR.
COMPLIANCE_BASIC_DEPOSIT_LIMIT_EUR = env.str("COMPLIANCE_BASIC_DEPOSIT_LIMIT_EUR", default="2000")
# A single deposit or withdrawal at or above this (EUR) needs KYC level "enhanced".
COMPLIANCE_HIGH_VALUE_THRESHOLD_EUR = env.str(
    "COMPLIANCE_HIGH_VALUE_THRESHOLD_EUR", default="10000"
)
# A raised deposit limit takes effect only after this cooling-off period.
COMPLIANCE_LIMIT_INCREASE_COOLING_OFF_HOURS = env.int(
    "COMPLIANCE_LIMIT_INCREASE_COOLING_OFF_HOURS", default=24
)
# Risk score bands: at or above MEDIUM is medium, at or above HIGH is high.
COMPLIANCE_RISK_MEDIUM = env.int("COMPLIANCE_RISK_MEDIUM", default=30)
COMPLIANCE_RISK_HIGH = env.int("COMPLIANCE_RISK_HIGH", default=60)
# How often the AML batch sweeps ledger entries the per-entry tasks may have missed.
COMPLIANCE_MONITORING_INTERVAL_SECONDS = env.int(
    "COMPLIANCE_MONITORING_INTERVAL_SECONDS", default=300
)

# --- wallets: game wallet and bonuses -----------------------------------------------------

# Signed game-provider calls older or newer than this are refused (replay window).
GAME_WALLET_SIGNATURE_TOLERANCE_SECONDS = env.int(
    "GAME_WALLET_SIGNATURE_TOLERANCE_SECONDS", default=300
)
# How long a game session token (issued when the casino launches a game) allows bets.
GAME_SESSION_TTL_SECONDS = env.int("GAME_SESSION_TTL_SECONDS", default=4 * 60 * 60)
# Fernet keys (newest first) that encrypt game-provider secrets at rest. Empty: a key derived
# from SECRET_KEY (the demo). Rotate by prepending a new key; old ciphertexts still decrypt.
GAME_PROVIDER_SECRET_KEYS = env.list("GAME_PROVIDER_SECRET_KEYS", default=[])
# Which money a bet spends first while a bonus is active: "cash_first" or "bonus_first".
BONUS_SPEND_ORDER = env.str("BONUS_SPEND_ORDER", default="cash_first")
# Highest wagering multiplier per player country (ISO alpha-2), applied when a bonus is
# granted: Great Britain caps wagering requirements at 10x from 2026.
BONUS_WAGERING_CAPS = env.json("BONUS_WAGERING_CAPS", default={"GB": 10})
# How often the beat job forfeits expired bonuses.
BONUS_EXPIRY_INTERVAL_SECONDS = env.int("BONUS_EXPIRY_INTERVAL_SECONDS", default=60)

# --- payments ------------------------------------------------------------------------------

# The simulated providers (payments/sandbox) and the cashier demo page: off unless explicitly
# enabled (`make demo`, `make test` and the pytest configuration set SANDBOX_ENABLED=true).
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=False)
# Where providers reach us (webhook URLs we hand them) and where the sandbox lives.
PAYMENTS_PUBLIC_BASE_URL = env.str("PAYMENTS_PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
PAYMENTS_DEFAULT_RETURN_URL = env.str(
    "PAYMENTS_DEFAULT_RETURN_URL", default=PAYMENTS_PUBLIC_BASE_URL + "/"
)
PAYMENTS_PROVIDER_TIMEOUT_SECONDS = env.float("PAYMENTS_PROVIDER_TIMEOUT_SECONDS", default=10.0)
PAYMENTS_PROVIDER_CONNECT_TIMEOUT_SECONDS = env.float(
    "PAYMENTS_PROVIDER_CONNECT_TIMEOUT_SECONDS", default=3.0
)
# Confirmations before a crypto payment counts as settled (a provider's options override).
PAYMENTS_CRYPTO_CONFIRMATIONS = env.json(
    "PAYMENTS_CRYPTO_CONFIRMATIONS", default={"BTC": 2, "ETH": 12, "USDT": 12}
)
# Underpaid crypto: "credit" what arrived, or "review" (hold until an operator accepts it).
PAYMENTS_CRYPTO_UNDERPAID = env.str("PAYMENTS_CRYPTO_UNDERPAID", default="credit")
# Withdrawals above these amounts go to review / need two approvers. A currency missing here
# always goes to review with two approvers (fail closed).
PAYMENTS_REVIEW_THRESHOLDS = env.json(
    "PAYMENTS_REVIEW_THRESHOLDS",
    default={
        "EUR": "500",
        "USD": "500",
        "GBP": "500",
        "JPY": "75000",
        "BTC": "0.01",
        "ETH": "0.2",
        "USDT": "500",
    },
)
PAYMENTS_FOUR_EYES_THRESHOLDS = env.json(
    "PAYMENTS_FOUR_EYES_THRESHOLDS",
    default={
        "EUR": "5000",
        "USD": "5000",
        "GBP": "5000",
        "JPY": "750000",
        "BTC": "0.1",
        "ETH": "2",
        "USDT": "5000",
    },
)
PAYMENTS_STUCK_AFTER_SECONDS = env.int("PAYMENTS_STUCK_AFTER_SECONDS", default=300)
PAYMENTS_WEBHOOK_SWEEP_AFTER_SECONDS = env.int("PAYMENTS_WEBHOOK_SWEEP_AFTER_SECONDS", default=60)
# A provider's webhook is a few KB; anything much larger is refused (413) before it is read.
PAYMENTS_WEBHOOK_MAX_BODY_BYTES = env.int("PAYMENTS_WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)
# Signs our notifications to the casino. Empty: a key derived from SECRET_KEY (the demo);
# production sets its own and shares it with the casino.
PAYMENTS_CALLBACK_SECRET = env.str("PAYMENTS_CALLBACK_SECRET", default="")
PAYMENTS_NOTIFICATION_TIMEOUT_SECONDS = env.float(
    "PAYMENTS_NOTIFICATION_TIMEOUT_SECONDS", default=5.0
)
PAYMENTS_NOTIFICATION_BACKOFF_SECONDS = env.list(
    "PAYMENTS_NOTIFICATION_BACKOFF_SECONDS", cast=int, default=[60, 300, 1800, 7200, 21600, 86400]
)
# Sandbox scenario timings (magic amounts, see docs/payments.md).
PAYMENTS_SANDBOX_WEBHOOK_DELAY_SECONDS = env.float(
    "PAYMENTS_SANDBOX_WEBHOOK_DELAY_SECONDS", default=5.0
)
PAYMENTS_SANDBOX_TIMEOUT_SLEEP_SECONDS = env.float(
    "PAYMENTS_SANDBOX_TIMEOUT_SLEEP_SECONDS", default=PAYMENTS_PROVIDER_TIMEOUT_SECONDS + 2
)
# Payments tasks may run on their own workers (`celery worker -Q <queue>`) so webhooks never
# wait behind batch jobs; empty keeps them on the default queue.
PAYMENTS_TASK_QUEUE = env.str("PAYMENTS_TASK_QUEUE", default="")
if PAYMENTS_TASK_QUEUE:
    CELERY_TASK_ROUTES = {"payments.*": {"queue": PAYMENTS_TASK_QUEUE}}

# Secrets at rest, instrument fingerprints, client addresses (docs/security.md).
# Keys of the instrument-fingerprint HMAC, "<version>:<key>", every version from 1 up (each
# wraps the one before; never drop one). Empty: one key derived from SECRET_KEY (the demo).
INSTRUMENT_FINGERPRINT_KEYS = env.list("INSTRUMENT_FINGERPRINT_KEYS", default=[])
# The reverse proxies in front of the app (IPs, CIDRs), outermost first: X-Forwarded-For is
# believed only through them; empty means REMOTE_ADDR is the client (wallets/client_ip.py).
CLIENT_IP_TRUSTED_PROXIES = env.list("CLIENT_IP_TRUSTED_PROXIES", default=[])
# Set (to "X-Real-IP") only where the app is reachable through the proxy alone (deploy/: a unix
# socket): the header the proxy overwrites with the address it saw is then the client.
CLIENT_IP_HEADER = env.str("CLIENT_IP_HEADER", default="")

# --- reconciliation ------------------------------------------------------------------------

# Matching defaults for a provider without its own ProviderPolicy row (admin).
RECONCILIATION_DEFAULT_AMOUNT_TOLERANCE = env.str(
    "RECONCILIATION_DEFAULT_AMOUNT_TOLERANCE", default="0"
)
RECONCILIATION_DEFAULT_MATCH_WINDOW_HOURS = env.int(
    "RECONCILIATION_DEFAULT_MATCH_WINDOW_HOURS", default=72
)
RECONCILIATION_DEFAULT_GRACE_PERIOD_HOURS = env.int(
    "RECONCILIATION_DEFAULT_GRACE_PERIOD_HOURS", default=48
)
# Write-offs above these amounts (per currency, "*" for the rest) need a second user's approval.
RECONCILIATION_WRITE_OFF_APPROVAL_THRESHOLDS = env.dict(
    "RECONCILIATION_WRITE_OFF_APPROVAL_THRESHOLDS",
    default={"EUR": "100", "USD": "100", "GBP": "100", "JPY": "15000", "*": "0"},
)
# Reports dropped here are imported by a periodic task: <folder>/<layout>/<provider>/*.csv.
RECONCILIATION_INBOX_DIR = env.str(
    "RECONCILIATION_INBOX_DIR", default=f"{MEDIA_ROOT}/settlement-inbox"
)
RECONCILIATION_INBOX_INTERVAL_SECONDS = env.int(
    "RECONCILIATION_INBOX_INTERVAL_SECONDS", default=300
)
RECONCILIATION_INTEGRITY_INTERVAL_SECONDS = env.int(
    "RECONCILIATION_INTEGRITY_INTERVAL_SECONDS", default=3600
)
# Loading a report queues a matching run of its provider.
RECONCILIATION_MATCH_AFTER_IMPORT = env.bool("RECONCILIATION_MATCH_AFTER_IMPORT", default=True)
# Unacknowledged integrity alerts on the reconciliation admin page.
TEMPLATES[0]["OPTIONS"]["context_processors"].append(
    "reconciliation.context_processors.integrity_alerts"
)
