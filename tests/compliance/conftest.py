import importlib

import pytest
from django.apps import apps as django_apps

from compliance.models import AmlRule

_seed = importlib.import_module("compliance.migrations.0002_rules_roles_and_schedules")


@pytest.fixture(autouse=True)
def _compliance_seed(request):
    """Transactional tests (anyone's) flush the migration-seeded rules and roles; put them
    back so every compliance test starts from what a migrated database holds."""
    if request.node.get_closest_marker("django_db") and not AmlRule.objects.exists():
        _seed.forwards(django_apps, None)
