from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from compliance.models import DepositLimit, SelfExclusion, VerificationRequest
from tests.compliance.factories import make_player, operator
from wallets.auth import issue_player_token

pytestmark = pytest.mark.django_db


def as_player(player) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_player_token(player)}")
    return client


def url(player, tail):
    return f"/api/v1/players/{player.external_id}/{tail}"


def test_player_sets_reads_and_raises_a_limit_with_cooling_off():
    player = make_player()
    client = as_player(player)
    body = {"currency": "EUR", "period": "day", "amount": "50.00"}
    response = client.put(url(player, "deposit-limits"), body, format="json")
    assert response.status_code == 200
    assert response.json()["amount"] == "50.00"
    response = client.put(url(player, "deposit-limits"), {**body, "amount": "80.00"}, format="json")
    assert response.json()["amount"] == "50.00"
    assert response.json()["pending_amount"] == "80.00"
    state = client.get(url(player, "responsible-gambling")).json()
    [limit] = state["deposit_limits"]
    assert (limit["amount"], limit["pending_amount"]) == ("50.00", "80.00")
    pending_from = timezone.datetime.fromisoformat(limit["pending_from"])
    assert abs(pending_from - (timezone.now() + timedelta(hours=24))) < timedelta(minutes=1)
    assert state["exclusion"] is None


def test_bad_limit_is_a_400_and_writes_nothing():
    player = make_player()
    response = as_player(player).put(
        url(player, "deposit-limits"),
        {"currency": "EUR", "period": "day", "amount": "10.005"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_precision"
    response = as_player(player).put(
        url(player, "deposit-limits"),
        {"currency": "XXX", "period": "day", "amount": "1"},
        format="json",
    )
    assert response.status_code == 400
    assert not DepositLimit.objects.exists()


def test_player_self_excludes_and_cannot_do_it_for_someone_else():
    player, other = make_player(), make_player()
    client = as_player(player)
    response = client.post(
        url(player, "self-exclusion"), {"kind": "timeout", "days": 7}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["kind"] == "timeout"
    assert client.get(url(player, "responsible-gambling")).json()["exclusion"]["kind"] == "timeout"
    response = client.post(url(other, "self-exclusion"), {"kind": "timeout", "days": 7})
    assert response.status_code == 404
    response = client.post(
        url(player, "self-exclusion"), {"kind": "self_exclusion", "days": 30}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_limit"
    assert SelfExclusion.objects.count() == 1


def test_staff_without_the_permission_cannot_exclude_a_player():
    player = make_player()
    client = APIClient()
    client.force_authenticate(operator())
    response = client.post(url(player, "self-exclusion"), {"kind": "timeout", "days": 1})
    assert response.status_code == 403
    assert not SelfExclusion.objects.exists()


def test_player_uploads_documents_and_sees_the_request(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    player = make_player(level="basic")
    client = as_player(player)
    response = client.post(
        url(player, "kyc/verifications"),
        {
            "target_level": "verified",
            "id_document": SimpleUploadedFile("id.pdf", b"%PDF-1.4", "application/pdf"),
            "id_document_expires_on": "2031-01-31",
            "proof_of_address": SimpleUploadedFile("bill.pdf", b"%PDF-1.4", "application/pdf"),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    request = VerificationRequest.objects.get(player=player)
    assert sorted(request.documents.values_list("document_type", flat=True)) == [
        "id_document",
        "proof_of_address",
    ]
    assert str(request.documents.get(document_type="id_document").expires_on) == "2031-01-31"
    status = client.get(url(player, "kyc")).json()
    assert status["level"] == "basic"
    assert status["verifications"][0]["status"] == "submitted"
