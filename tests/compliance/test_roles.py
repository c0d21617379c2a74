import pytest
from django.contrib.auth.models import Group

pytestmark = pytest.mark.django_db


def perms(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


def test_roles_are_created_with_least_privilege():
    officer, operator = perms("Compliance officer"), perms("Operator")
    finance, supervisor = perms("Finance"), perms("Supervisor")
    assert {"compliance.close_case", "compliance.work_case", "compliance.file_sar"} <= officer
    assert {"compliance.review_verification", "compliance.resolve_alert"} <= officer
    assert "compliance.change_amlrule" not in officer
    assert "compliance.change_amlrule" in supervisor and officer <= supervisor
    assert not {p for p in operator if p.startswith("compliance.") and "view_" not in p}
    assert "compliance.view_case" in operator
    # Finance writes in reconciliation only (docs/roles.md); elsewhere it reads.
    assert not {
        p
        for p in finance
        if not p.split(".")[1].startswith("view_") and not p.startswith("reconciliation.")
    }
    # Nobody may rewrite decisions or the audit trail, not even a supervisor.
    for role in (officer, operator, finance, supervisor):
        assert not role & {"compliance.change_auditevent", "compliance.delete_auditevent"}
        assert not role & {"compliance.change_paymentdecision", "compliance.delete_case"}
