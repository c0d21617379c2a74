"""compliance/services.py was one module in an import loop with monitoring, screening and tasks
(each imported the others, some of it hidden inside functions). Now every compliance module
imports alone, first, in a fresh interpreter, and the lower ones pull in nothing above them.
The import-linter contracts in pyproject.toml (`compliance-layers`, `compliance-acyclic`)
check the same order statically, function-level imports included."""

import pytest

from tests.module_imports import REPOSITORY, import_alone

COMPLIANCE = REPOSITORY / "compliance"
MODULES = sorted(
    ".".join(path.relative_to(REPOSITORY).with_suffix("").parts).removesuffix(".__init__")
    for path in COMPLIANCE.rglob("*.py")
    if "migrations" not in path.parts
)
ABOVE_SERVICES = {
    "compliance.monitoring",
    "compliance.tasks",
    "compliance.receivers",
    "compliance.admin",
    "compliance.api",
    "compliance.urls",
}


def test_every_compliance_module_is_checked():
    assert {
        "compliance.services",
        "compliance.services.decisions",
        "compliance.services.kyc",
        "compliance.services.gambling",
        "compliance.services.cases",
        "compliance.services.risk",
        "compliance.services.audit",
        "compliance.services.screening",
        "compliance.selectors",
        "compliance.screening",
        "compliance.monitoring",
        "compliance.tasks",
    } <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone(module):
    loaded = set(import_alone(module)["loaded"])
    if module.startswith("compliance.services"):
        assert not loaded & ABOVE_SERVICES
    if module in ("compliance.selectors", "compliance.screening", "compliance.rules"):
        assert not {m for m in loaded if m.startswith("compliance.services")}
        assert not loaded & ABOVE_SERVICES


def test_a_subject_module_alone_loads_the_services_it_builds_on_and_nothing_above():
    loaded = set(import_alone("compliance.services.kyc")["loaded"])
    assert {
        "compliance.services.kyc",
        "compliance.services.audit",
        "compliance.services.risk",
        "compliance.services.screening",
        "compliance.screening",
        "compliance.selectors",
    } <= loaded
    assert not loaded & ABOVE_SERVICES
