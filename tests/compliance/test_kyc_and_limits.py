from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from compliance import services
from compliance.errors import DocumentsMissing, InvalidLimit, InvalidTransition, NotPermitted
from compliance.models import DepositLimit, KycLevelChange, KycProfile
from tests.compliance.factories import ago, at, deposit, make_player, officer, operator

pytestmark = pytest.mark.django_db


def upload(name="passport.pdf"):
    return SimpleUploadedFile(name, b"%PDF-1.4 test", content_type="application/pdf")


def in_days(days):
    return timezone.localdate() + timedelta(days=days)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def submit_verified(player, id_expires=None):
    return services.submit_verification(
        player=player,
        target_level="verified",
        documents=[
            ("id_document", upload(), id_expires or in_days(365)),
            ("proof_of_address", upload("bill.pdf"), None),
        ],
    )


# --- verification --------------------------------------------------------------------------


def test_officer_approves_a_verification_and_the_level_rises_with_a_record():
    player = make_player(level="basic")
    user = officer()
    request = submit_verified(player)
    services.review_verification(request=request, reviewer=user, decision="start_review")
    request = services.review_verification(
        request=request, reviewer=user, decision="approve", reason="Documents match"
    )
    assert request.status == "approved" and request.reviewer == user
    assert KycProfile.objects.get(player=player).level == "verified"
    change = KycLevelChange.objects.get(player=player)
    assert (change.from_level, change.to_level, change.actor) == ("basic", "verified", user)


def test_approval_without_the_documents_of_the_level_is_refused():
    player = make_player(level="basic")
    user = officer()
    request = services.submit_verification(
        player=player, target_level="verified", documents=[("id_document", upload(), None)]
    )
    services.review_verification(request=request, reviewer=user, decision="start_review")
    with pytest.raises(DocumentsMissing) as missing:
        services.review_verification(
            request=request, reviewer=user, decision="approve", reason="ok"
        )
    assert missing.value.details["missing"] == ["proof_of_address"]
    assert KycProfile.objects.get(player=player).level == "basic"


def test_rejection_needs_a_reason_and_only_an_officer_reviews():
    player = make_player(level="basic")
    request = submit_verified(player)
    with pytest.raises(NotPermitted):
        services.review_verification(request=request, reviewer=operator(), decision="start_review")
    user = officer()
    services.review_verification(request=request, reviewer=user, decision="start_review")
    with pytest.raises(Exception, match="reason"):
        services.review_verification(request=request, reviewer=user, decision="reject")
    request = services.review_verification(
        request=request, reviewer=user, decision="reject", reason="Photo unreadable"
    )
    assert request.status == "rejected"
    with pytest.raises(InvalidTransition):
        services.review_verification(request=request, reviewer=user, decision="approve", reason="x")


def test_resubmission_goes_back_to_submitted():
    player = make_player(level="basic")
    user = officer()
    request = submit_verified(player)
    services.review_verification(request=request, reviewer=user, decision="start_review")
    services.review_verification(
        request=request, reviewer=user, decision="request_resubmission", reason="Blurred"
    )
    request = services.resubmit_verification(
        request=request, documents=[("id_document", upload("new.pdf"), in_days(900))]
    )
    assert request.status == "submitted" and request.documents.count() == 3


def test_expired_document_downgrades_the_level_and_a_valid_one_does_not():
    expiring, valid = make_player(level="basic"), make_player(level="basic")
    user = officer()
    for player, expires in ((expiring, in_days(10)), (valid, in_days(400))):
        request = submit_verified(player, id_expires=expires)
        services.review_verification(request=request, reviewer=user, decision="start_review")
        services.review_verification(
            request=request, reviewer=user, decision="approve", reason="ok"
        )
    assert services.expire_kyc_documents(today=in_days(30)) == 1
    assert KycProfile.objects.get(player=expiring).level == "basic"
    assert KycProfile.objects.get(player=valid).level == "verified"
    downgrade = KycLevelChange.objects.filter(player=expiring).first()
    assert "expired" in downgrade.reason and downgrade.actor is None
    # The downgraded player can no longer withdraw.
    decision = services.assess_withdrawal(
        player=expiring, amount=Decimal("10.00"), currency="EUR", method="card"
    )
    assert decision.reasons == ["kyc_verification_required"]


# --- deposit limits ------------------------------------------------------------------------


def assess(player, amount):
    return services.assess_deposit(
        player=player, amount=Decimal(amount), currency="EUR", method="card"
    )


def test_a_decrease_applies_at_once():
    player = make_player()
    services.set_deposit_limit(player=player, currency="EUR", period="day", amount="500.00")
    services.set_deposit_limit(player=player, currency="EUR", period="day", amount="100.00")
    deposit(player, "80.00")
    assert assess(player, "20.00").is_allowed
    assert assess(player, "20.01").reasons == ["deposit_limit_exceeded"]


def test_an_increase_waits_for_the_cooling_off_period():
    player = make_player()
    services.set_deposit_limit(player=player, currency="EUR", period="day", amount="100.00")
    limit = services.set_deposit_limit(
        player=player, currency="EUR", period="day", amount="1000.00"
    )
    assert limit.amount == Decimal("100.00") and limit.pending_amount == Decimal("1000.00")
    assert assess(player, "150.00").reasons == ["deposit_limit_exceeded"]
    with at(timezone.now() + timedelta(hours=24, minutes=1)):
        assert assess(player, "150.00").is_allowed


def test_removing_a_limit_also_waits_for_the_cooling_off_period():
    player = make_player()
    services.set_deposit_limit(player=player, currency="EUR", period="week", amount="100.00")
    services.set_deposit_limit(player=player, currency="EUR", period="week", amount=None)
    assert assess(player, "150.00").reasons == ["deposit_limit_exceeded"]
    with at(timezone.now() + timedelta(hours=25)):
        assert assess(player, "150.00").is_allowed


def test_limits_sum_deposits_over_rolling_windows():
    player = make_player()
    deposit(player, "60.00", when=ago(days=2))
    deposit(player, "30.00", when=ago(hours=3))
    services.set_deposit_limit(player=player, currency="EUR", period="day", amount="100.00")
    services.set_deposit_limit(player=player, currency="EUR", period="week", amount="120.00")
    # Day: 30 in the last 24h; week: 90 in the last 7 days.
    assert assess(player, "30.00").is_allowed
    decision = assess(player, "30.01")
    assert decision.reasons == ["deposit_limit_exceeded"]
    services.set_deposit_limit(player=player, currency="EUR", period="month", amount="50.00")
    assert assess(player, "1.00").reasons == ["deposit_limit_exceeded"]


def test_limit_in_another_currency_does_not_apply():
    player = make_player()
    services.set_deposit_limit(player=player, currency="GBP", period="day", amount="10.00")
    assert assess(player, "50.00").is_allowed


@pytest.mark.parametrize(("period", "amount"), [("year", "10.00"), ("day", "0"), ("day", "1.001")])
def test_bad_limits_are_refused_and_nothing_is_written(period, amount):
    from wallets.errors import DomainError

    player = make_player()
    with pytest.raises(DomainError):
        services.set_deposit_limit(player=player, currency="EUR", period=period, amount=amount)
    assert not DepositLimit.objects.exists()
    assert InvalidLimit.code == "invalid_limit"
