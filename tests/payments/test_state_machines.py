"""Every allowed and forbidden transition of both machines, against a table written from
the issue (not read back from the code)."""

from datetime import UTC, datetime
from decimal import Decimal

import django_fsm as fsm
import pytest

from payments.models import Deposit, Withdrawal

NOW = datetime(2026, 1, 1, tzinfo=UTC)
D = Deposit.Status
W = Withdrawal.Status

DEPOSIT_CALLS = {
    "mark_pending": {},
    "succeed": {"amount_received": Decimal("10"), "completed_at": NOW},
    "fail": {"completed_at": NOW},
    "expire": {"completed_at": NOW},
    "cancel": {"completed_at": NOW},
    "record_refund": {"amount": Decimal("4")},
}
DEPOSIT_ALLOWED = {
    ("mark_pending", D.CREATED): D.PENDING,
    ("succeed", D.CREATED): D.SUCCEEDED,
    ("succeed", D.PENDING): D.SUCCEEDED,
    ("succeed", D.EXPIRED): D.SUCCEEDED,  # crypto paid late
    ("fail", D.CREATED): D.FAILED,
    ("fail", D.PENDING): D.FAILED,
    ("expire", D.CREATED): D.EXPIRED,
    ("expire", D.PENDING): D.EXPIRED,
    ("cancel", D.CREATED): D.CANCELLED,
    ("cancel", D.PENDING): D.CANCELLED,
    ("record_refund", D.SUCCEEDED): D.PARTIALLY_REFUNDED,
    ("record_refund", D.PARTIALLY_REFUNDED): D.PARTIALLY_REFUNDED,
}

WITHDRAWAL_CALLS = {
    "send_to_review": {"reasons": ["x"]},
    "approve": {},
    "start_processing": {"started_at": NOW},
    "mark_paid": {"completed_at": NOW},
    "fail": {"completed_at": NOW},
    "reject": {"reason": "no", "completed_at": NOW},
    "cancel": {"completed_at": NOW},
}
WITHDRAWAL_ALLOWED = {
    ("send_to_review", W.REQUESTED): W.IN_REVIEW,
    ("approve", W.REQUESTED): W.APPROVED,
    ("approve", W.IN_REVIEW): W.APPROVED,
    ("start_processing", W.APPROVED): W.PROCESSING,
    ("mark_paid", W.PROCESSING): W.PAID,
    ("fail", W.PROCESSING): W.FAILED,
    ("reject", W.REQUESTED): W.REJECTED,
    ("reject", W.IN_REVIEW): W.REJECTED,
    ("reject", W.APPROVED): W.REJECTED,
    ("cancel", W.REQUESTED): W.CANCELLED,
    ("cancel", W.IN_REVIEW): W.CANCELLED,
    ("cancel", W.APPROVED): W.CANCELLED,
}


def _cases(calls, states, allowed):
    return [
        pytest.param(method, state, allowed.get((method, state)), id=f"{method}-from-{state}")
        for method in calls
        for state in states
    ]


@pytest.mark.parametrize("method,source,target", _cases(DEPOSIT_CALLS, D.values, DEPOSIT_ALLOWED))
def test_deposit_transition_table(method, source, target):
    deposit = Deposit(status=source, amount=Decimal("10"), refunded_amount=Decimal(0))
    transition = getattr(deposit, method)
    if target is None:
        assert not fsm.can_proceed(transition)
        with pytest.raises(fsm.TransitionNotAllowed):
            transition(**DEPOSIT_CALLS[method])
        assert deposit.status == source
    else:
        transition(**DEPOSIT_CALLS[method])
        assert deposit.status == target


@pytest.mark.parametrize(
    "method,source,target", _cases(WITHDRAWAL_CALLS, W.values, WITHDRAWAL_ALLOWED)
)
def test_withdrawal_transition_table(method, source, target):
    withdrawal = Withdrawal(status=source, amount=Decimal("10"))
    transition = getattr(withdrawal, method)
    if target is None:
        assert not fsm.can_proceed(transition)
        with pytest.raises(fsm.TransitionNotAllowed):
            transition(**WITHDRAWAL_CALLS[method])
        assert withdrawal.status == source
    else:
        transition(**WITHDRAWAL_CALLS[method])
        assert withdrawal.status == target


def test_refunding_the_whole_credited_amount_makes_the_deposit_refunded():
    deposit = Deposit(status=D.SUCCEEDED, amount=Decimal("10"), amount_received=Decimal("10"))
    deposit.record_refund(amount=Decimal("4"))
    assert (deposit.status, deposit.refunded_amount) == (D.PARTIALLY_REFUNDED, Decimal("4"))
    deposit.record_refund(amount=Decimal("6"))
    assert (deposit.status, deposit.refunded_amount) == (D.REFUNDED, Decimal("10"))


def test_status_cannot_be_assigned_directly():
    deposit = Deposit(status=D.PENDING)
    with pytest.raises(AttributeError):
        deposit.status = D.SUCCEEDED
