import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from compliance import services
from compliance.models import AmlRule, AuditEvent, Case
from tests.compliance.factories import make_player, officer, operator

pytestmark = pytest.mark.django_db


def open_case():
    player = make_player()
    services.raise_alert(
        rule=AmlRule.objects.get(kind="large_transaction"),
        player=player,
        dedup_key="e:1",
        details={},
    )
    return Case.objects.get(player=player)


def test_officer_works_the_queue_and_closes_a_case_from_the_admin(client):
    user = officer()
    client.force_login(user)
    case = open_case()
    assert client.get(reverse("admin:compliance_case_changelist")).status_code == 200
    page = client.get(reverse("admin:compliance_case_change", args=[case.pk]))
    assert page.status_code == 200
    assert b"Close case" in page.content and b"Start investigation" in page.content
    close = reverse("admin:compliance_case_act", args=[case.pk, "close"])
    response = client.post(close, {"outcome": "false_positive", "note": "Known salary"})
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.status, case.closed_by) == ("closed", user)


def test_operator_sees_the_case_but_the_close_button_does_not_close_it(client):
    client.force_login(operator())
    case = open_case()
    page = client.get(reverse("admin:compliance_case_change", args=[case.pk]))
    assert page.status_code == 200
    assert b"Close case" not in page.content  # not offered to the role...
    close = reverse("admin:compliance_case_act", args=[case.pk, "close"])  # ...and refused
    response = client.post(close, {"outcome": "false_positive", "note": "x"})
    assert response.status_code == 200
    assert b"does not allow" in response.content
    assert Case.objects.get(pk=case.pk).status == "open"


def test_rule_parameters_are_validated_and_changes_audited(client):
    user = officer()
    user.user_permissions.add(Permission.objects.get(codename="change_amlrule"))
    client.force_login(type(user).objects.get(pk=user.pk))
    rule = AmlRule.objects.get(kind="deposit_velocity")
    url = reverse("admin:compliance_amlrule_change", args=[rule.pk])
    base = {"name": rule.name, "is_enabled": "on", "score": "15", "description": ""}
    bad = client.post(url, {**base, "parameters": '{"max_count": "many"}'})
    assert bad.status_code == 200 and b"not a valid int" in bad.content
    good = client.post(url, {**base, "parameters": '{"max_count": 8}'})
    assert good.status_code == 302
    rule.refresh_from_db()
    assert rule.parameters == {"max_count": 8, "window_minutes": 60}
    assert AuditEvent.objects.filter(action="rule_changed", actor=user).exists()
