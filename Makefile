# Two commands: `make demo` runs the platform with demo data; `make test` runs the suite.
VENV ?= .venv
PY := $(VENV)/bin/python
# Tests always run on PostgreSQL and the real Redis broker; `make test` installs and starts
# them on this machine when they are missing or down (scripts/test-services). The password is
# for a fresh Debian cluster, which asks TCP clients for one; a trust setup ignores it.
TEST_DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:5432/casino
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

.PHONY: demo test test-services lint format

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

# The demo and the tests run on plain http with the sandbox; both are off unless set (settings).
demo: export DEPLOY_PROFILE ?= local
demo: export SANDBOX_ENABLED ?= true
demo: export API_DOCS_PUBLIC ?= true
demo: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo
	$(PY) manage.py setup_sandbox_providers
	$(PY) manage.py load_demo_compliance
	@# The OFAC snapshot vendored in data/ofac/ (OFAC_DATA_DIR); `--dir` loads a newer list.
	$(PY) manage.py import_sanctions
	@echo "Platform: http://127.0.0.1:8000  cashier: /cashier/  admin: /admin/  API docs: /api/docs/"
	@# --insecure: serve the admin's static files without DEBUG (the demo has no web server).
	$(PY) manage.py runserver --insecure 127.0.0.1:8000

# Browser tests drive Debian's chromium; Playwright never downloads a browser of its own.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# `nginx -t` checks deploy/'s site (tests/config/test_deploy.py); Debian's light build will do.
NGINX := /usr/sbin/nginx
$(NGINX):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light

test: export DEPLOY_PROFILE ?= local
test: export SANDBOX_ENABLED ?= true
test: $(VENV)/.installed $(CHROMIUM) $(NGINX)
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)} \
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# PostgreSQL and Redis for the tests, at DATABASE_URL / CELERY_BROKER_URL (default above).
test: test-services
test-services:
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)} \
	bash scripts/test-services

# ruff, then the import contracts in pyproject.toml (app layers, money below the ledger,
# compliance's inner order and no cycles); CI runs this before the tests.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
