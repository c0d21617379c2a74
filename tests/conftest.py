import pytest

from wallets.services import seed_currencies


@pytest.fixture(autouse=True)
def _seeded_currencies(request):
    """Transactional tests flush the database, seeded currencies included; put them back."""
    if request.node.get_closest_marker("django_db"):
        request.getfixturevalue("_django_db_helper")
        seed_currencies()
