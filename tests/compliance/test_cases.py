from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from compliance import services
from compliance.errors import InvalidTransition, NoteRequired, NotPermitted
from compliance.models import Alert, AmlRule, AuditEvent, Case, WithdrawalBlock
from tests.compliance.factories import make_player, officer, operator, staff
from wallets.models import Player

pytestmark = pytest.mark.django_db


def open_case(player=None, kind="large_transaction", key="entry:1"):
    player = player or make_player()
    services.raise_alert(
        rule=AmlRule.objects.get(kind=kind), player=player, dedup_key=key, details={}
    )
    return Case.objects.exclude(status="closed").get(player=player)


def assess_withdrawal(player):
    return services.assess_withdrawal(player=player, amount="50.00", currency="EUR", method="card")


def test_case_lifecycle_from_open_to_closed_with_audit_trail():
    user = officer()
    case = open_case()
    case = services.assign_case(case=case, actor=user)
    assert case.assigned_to == user
    case = services.start_investigation(case=case, actor=user)
    services.add_case_note(case=case, actor=user, text="Called the player; awaiting payslips.")
    case = services.escalate_case(case=case, actor=user, reason="Source of funds unclear")
    assert case.status == "escalated"
    case = services.close_case(
        case=case, actor=user, outcome="risk_confirmed", note="Payslips do not cover deposits"
    )
    assert (case.status, case.outcome, case.closed_by) == ("closed", "risk_confirmed", user)
    assert case.alerts.get().status == Alert.Status.CONFIRMED
    actions = list(
        AuditEvent.objects.filter(case=case).order_by("id").values_list("action", flat=True)
    )
    assert actions == [
        "case_opened",
        "alert_raised",
        "case_assigned",
        "case_investigating",
        "case_note_added",
        "case_escalated",
        "case_closed",
    ]


def test_operator_cannot_close_a_case_but_an_officer_can():
    case = open_case()
    with pytest.raises(NotPermitted):
        services.close_case(case=case, actor=operator(), outcome="false_positive", note="fine")
    assert Case.objects.get(pk=case.pk).status == "open"
    services.close_case(case=case, actor=officer(), outcome="false_positive", note="Salary")
    case.refresh_from_db()
    assert case.status == "closed"
    assert case.alerts.get().status == Alert.Status.CLEARED


def test_operator_cannot_work_a_case_either():
    case = open_case()
    with pytest.raises(NotPermitted):
        services.start_investigation(case=case, actor=operator())
    with pytest.raises(NotPermitted):
        services.block_withdrawals(player=case.player, actor=operator(), reason="x")
    assert not WithdrawalBlock.objects.exists()


def test_closing_needs_an_outcome_and_a_note():
    case = open_case()
    user = officer()
    with pytest.raises(NoteRequired):
        services.close_case(case=case, actor=user, outcome="false_positive", note="  ")
    with pytest.raises(InvalidTransition):
        services.close_case(case=case, actor=user, outcome="nothing", note="ok")
    assert Case.objects.get(pk=case.pk).status == "open"


def test_sar_outcome_needs_a_recorded_sar():
    case = open_case()
    user = officer()
    with pytest.raises(InvalidTransition):
        services.close_case(case=case, actor=user, outcome="sar_filed", note="Reported")
    sar = services.record_sar(
        case=case,
        actor=user,
        reference="FIU-2026-0042",
        filed_on=date(2026, 11, 25),
        narrative="Deposits with no play, withdrawn to a third-party account.",
    )
    case = services.close_case(case=case, actor=user, outcome="sar_filed", note="Reported")
    assert case.outcome == "sar_filed" and case.sars.get() == sar


def test_closed_case_cannot_move_again_and_new_alerts_open_a_new_case():
    player = make_player()
    case = open_case(player)
    user = officer()
    services.close_case(case=case, actor=user, outcome="false_positive", note="ok")
    with pytest.raises(InvalidTransition):
        services.escalate_case(case=case, actor=user, reason="again")
    second = open_case(player, key="entry:2")
    assert second.pk != case.pk and second.status == "open"


def test_block_withdrawals_refuses_them_until_lifted():
    player = make_player()
    case = open_case(player)
    user = officer()
    assert assess_withdrawal(player).is_allowed
    block = services.block_withdrawals(player=player, actor=user, reason="Pending SoF", case=case)
    decision = assess_withdrawal(player)
    assert (decision.outcome, decision.reasons) == ("refuse", ["withdrawals_blocked"])
    services.lift_withdrawal_block(block=block, actor=user, reason="SoF received")
    assert assess_withdrawal(player).is_allowed


def test_freeze_player_from_a_case_uses_the_wallet_freeze():
    case = open_case()
    services.freeze_player_for_case(case=case, actor=officer(), reason="Suspected mule")
    player = Player.objects.get(pk=case.player_id)
    assert player.status == "frozen"
    assert player.status_changes.get().reason.startswith(f"Compliance case #{case.pk}")


def test_requested_documents_are_recorded_and_fulfilled_by_the_upload(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    case = open_case()
    request = services.request_documents(
        case=case, actor=officer(), document_types=["source_of_funds"], message="Payslips"
    )
    assert request.case == case and request.document_types == ["source_of_funds"]
    with pytest.raises(Exception, match="document types"):
        services.request_documents(case=case, actor=officer(), document_types=["selfie"])
    services.submit_verification(
        player=case.player,
        target_level="enhanced",
        documents=[("source_of_funds", SimpleUploadedFile("payslip.pdf", b"%PDF-1.4"), None)],
    )
    request.refresh_from_db()
    assert request.fulfilled_at is not None


def test_investigating_case_sends_withdrawals_to_review_with_a_neutral_reason():
    player = make_player()
    case = open_case(player)
    services.start_investigation(case=case, actor=officer())
    decision = assess_withdrawal(player)
    assert (decision.outcome, decision.reasons) == ("review", ["compliance_review"])


def test_queue_orders_by_risk_then_age():
    low = open_case(kind="net_deposits")
    high = open_case(kind="shared_instrument")
    older_high = Case.objects.get(pk=high.pk)
    also_high = open_case(kind="shared_instrument")
    assert list(Case.objects.all()) == [older_high, also_high, low]


def test_supervisor_can_close_and_finance_cannot():
    case = open_case()
    with pytest.raises(NotPermitted):
        services.close_case(case=case, actor=staff("Finance"), outcome="false_positive", note="x")
    services.close_case(case=case, actor=staff("Supervisor"), outcome="false_positive", note="x")
