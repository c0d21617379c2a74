from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from reconciliation import services
from reconciliation.errors import BreakTransitionRefused, FourEyesRequired
from reconciliation.models import Break, BreakTransition, ReconciliationRun
from tests.reconciliation import factories as f
from tests.reconciliation.test_matching import PROVIDER, import_rows, row, run_matching
from wallets import selectors
from wallets.models import Account, JournalEntry

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stub_providers")]


def supervisor():
    user = f.StaffUserFactory()
    user.user_permissions.add(Permission.objects.get(codename="approve_write_off"))
    return type(user).objects.get(pk=user.pk)


def clearing() -> Decimal:
    account = Account.objects.get(
        kind=Account.Kind.PROVIDER_CLEARING, system_code=PROVIDER, currency_id="EUR"
    )
    return selectors.account_balance(account)


def short_break(provider, ours: str, theirs: str) -> Break:
    deposit = f.deposit(provider, ours)
    import_rows([row("payment", deposit.provider_reference, theirs)], name=f"{ours}.csv")
    run_matching()
    return Break.objects.get(internal_reference=deposit.reference)


@pytest.fixture
def provider():
    return f.ProviderFactory(code=PROVIDER)


def test_a_small_write_off_is_booked_at_once(provider):
    brk = short_break(provider, "100.00", "95.00")
    clerk = f.StaffUserFactory()
    services.investigate_break(brk=brk, actor=clerk)

    brk = services.request_write_off(brk=brk, actor=clerk, reason="card scheme rounding")

    assert brk.status == Break.Status.WRITTEN_OFF
    assert brk.entry.kind == JournalEntry.Kind.RECONCILIATION_ADJUSTMENT
    legs = sorted((p.account.kind, p.amount) for p in brk.entry.postings.select_related("account"))
    assert legs == [
        (Account.Kind.PROVIDER_CLEARING, Decimal("5.00")),
        (Account.Kind.WRITE_OFF, Decimal("-5.00")),
    ]
    # The provider owes what it reported: 95.00.
    assert clearing() == Decimal("-95.00")
    assert list(brk.transitions.values_list("from_status", "to_status", "actor")) == [
        ("open", "investigating", clerk.pk),
        ("investigating", "written_off", clerk.pk),
    ]
    assert selectors.ledger_problems() == []


def test_a_write_off_above_the_threshold_needs_a_second_users_approval(provider):
    brk = short_break(provider, "500.00", "300.00")
    clerk = supervisor()
    brk = services.request_write_off(brk=brk, actor=clerk, reason="provider will not pay")
    assert brk.status == Break.Status.AWAITING_APPROVAL
    assert brk.entry_id is None
    entries = JournalEntry.objects.count()

    with pytest.raises(FourEyesRequired):
        services.approve_write_off(brk=brk, approver=clerk)  # the requester, even with the perm
    with pytest.raises(FourEyesRequired):
        services.approve_write_off(brk=brk, approver=f.StaffUserFactory())  # no permission
    brk.refresh_from_db()
    assert brk.status == Break.Status.AWAITING_APPROVAL
    assert JournalEntry.objects.count() == entries

    approver = supervisor()
    brk = services.approve_write_off(brk=brk, approver=approver, reason="ok")
    assert brk.status == Break.Status.WRITTEN_OFF
    assert brk.closed_by == approver
    assert clearing() == Decimal("-300.00")


def test_a_rejected_write_off_goes_back_to_investigation(provider):
    brk = short_break(provider, "500.00", "300.00")
    brk = services.request_write_off(brk=brk, actor=f.StaffUserFactory(), reason="lost")
    brk = services.reject_write_off(brk=brk, actor=supervisor(), reason="chase the provider")
    assert brk.status == Break.Status.INVESTIGATING
    assert brk.write_off_requested_by is None


def test_awaiting_approval_survives_a_new_run_and_keeps_its_id(provider):
    brk = short_break(provider, "500.00", "300.00")
    brk = services.request_write_off(brk=brk, actor=f.StaffUserFactory(), reason="lost")
    run_matching()
    assert Break.objects.get(pk=brk.pk).status == Break.Status.AWAITING_APPROVAL
    assert Break.objects.filter(break_type=brk.break_type).count() == 1


def test_fixing_by_adjustment_books_against_the_adjustment_account(provider):
    brk = short_break(provider, "100.00", "90.00")
    brk = services.resolve_break(
        brk=brk, actor=f.StaffUserFactory(), resolution="fixed_by_adjustment", reason="fixed"
    )
    assert (brk.status, brk.resolution) == (Break.Status.RESOLVED, "fixed_by_adjustment")
    counter = brk.entry.postings.exclude(account__kind=Account.Kind.PROVIDER_CLEARING).get()
    assert (counter.account.kind, counter.account.system_code, counter.amount) == (
        Account.Kind.MANUAL_ADJUSTMENT,
        "reconciliation",
        Decimal("-10.00"),
    )


def test_closed_breaks_refuse_further_moves_and_write_nothing(provider):
    brk = short_break(provider, "100.00", "90.00")
    actor = f.StaffUserFactory()
    brk = services.resolve_break(brk=brk, actor=actor, resolution="accepted", reason="fine")
    transitions = BreakTransition.objects.count()
    with pytest.raises(BreakTransitionRefused):
        services.request_write_off(brk=brk, actor=actor, reason="again")
    with pytest.raises(BreakTransitionRefused):
        services.resolve_break(brk=brk, actor=actor, resolution="made_up", reason="x")
    with pytest.raises(BreakTransitionRefused):
        services.investigate_break(brk=brk, actor=actor)
    assert BreakTransition.objects.count() == transitions
    assert ReconciliationRun.objects.count() == 1
