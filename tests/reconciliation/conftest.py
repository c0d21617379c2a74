import pytest


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """Uploaded reports land in a per-test folder, never in the repository."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def stub_providers(monkeypatch):
    """Replace only the providers' HTTP APIs; see factories.StubAdapter."""
    from tests.reconciliation.factories import StubAdapter

    monkeypatch.setattr("payments.providers.adapter_for", StubAdapter)


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in-process for tests that follow a task through (the broker is real
    otherwise, and no worker consumes it during tests)."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous
