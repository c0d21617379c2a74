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
