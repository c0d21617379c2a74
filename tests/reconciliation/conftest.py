import pytest


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """Uploaded reports land in a per-test folder, never in the repository."""
    settings.MEDIA_ROOT = tmp_path / "media"
