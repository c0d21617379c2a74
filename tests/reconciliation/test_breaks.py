from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from reconciliation import services
from reconciliation.errors import BreakTransitionRefused, FourEyesRequired
from reconciliation.models import (
    Break,
    BreakTransition,
    IntegrityAlert,
    ProviderPolicy,
    ReconciliationRun,
    SettlementImport,
)
from tests.reconciliation import factories as f
from tests.reconciliation.helpers import adyen_time, load, match
from tests.reconciliation.reports import ADYEN_COLUMNS, adyen_row, write_csv
from tests.reconciliation.test_matching import PROVIDER, import_rows, row, run_matching
from wallets import selectors
from wallets import services as ledger
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


# --- issue 15: a resolved break's identity is never opened again ---------------------------


def _unreported_deposit_break(provider):
    """An Adyen settlement-details report that settles one deposit and, a day and a half
    later, books a fee; the other deposit is never reported: missing at the provider."""
    ProviderPolicy.objects.update_or_create(
        provider_code=PROVIDER, defaults={"grace_period_hours": 24, "match_window_hours": 72}
    )
    reported = f.deposit(provider, "50.00")
    unreported = f.deposit(provider, "15.00")
    now = timezone.now()
    content = write_csv(
        ADYEN_COLUMNS,
        [
            adyen_row(
                "Settled",
                psp=reported.provider_reference,
                merchant_reference=reported.reference,
                gross_credit="50.00",
                net_credit="49.50",
                commission="0.50",
                created=adyen_time(now),
            ),
            adyen_row(
                "Fee",
                psp="",
                modification="FEE-1",
                net_debit="1.00",
                created=adyen_time(now + timedelta(hours=30)),
            ),
        ],
    )
    load(SettlementImport.Layout.ADYEN, PROVIDER, content, name="adyen-day-1.csv")
    match(PROVIDER, as_of=now + timedelta(hours=36))
    return Break.objects.get(key=f"missing_at_provider:deposit:{unreported.pk}"), now


def test_a_resolved_missing_at_provider_break_is_not_reopened_nor_booked_twice(provider):
    brk, now = _unreported_deposit_break(provider)
    assert (brk.difference, brk.status) == (Decimal("-15.00"), Break.Status.OPEN)
    clerk = f.StaffUserFactory()
    services.resolve_break(
        brk=brk, actor=clerk, resolution="fixed_by_adjustment", reason="never settled"
    )
    after_fix = clearing()
    adjustments = JournalEntry.objects.filter(kind=JournalEntry.Kind.RECONCILIATION_ADJUSTMENT)
    assert adjustments.count() == 1

    # The next runs still find the deposit unreported: the identity is held by the
    # resolved break, so nothing new is opened and there is nothing to fix (or book) again.
    for hours in (48, 60):
        match(PROVIDER, as_of=now + timedelta(hours=hours))
    assert list(Break.objects.filter(key=brk.key).values_list("pk", "status")) == [
        (brk.pk, Break.Status.RESOLVED)
    ]
    assert not Break.objects.filter(status__in=Break.ACTIVE).exists()
    assert adjustments.count() == 1
    assert clearing() == after_fix


def test_the_database_refuses_a_second_break_of_a_held_identity(provider):
    brk, _ = _unreported_deposit_break(provider)
    services.resolve_break(
        brk=brk, actor=f.StaffUserFactory(), resolution="accepted", reason="known gap"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Break.objects.create(
            break_type=brk.break_type,
            key=brk.key,
            provider_code=brk.provider_code,
            currency=brk.currency,
            difference=brk.difference,
            first_run=brk.first_run,
            last_run=brk.last_run,
        )
    # A break a run cleared leaves the identity free: it may be found again.
    Break.objects.filter(pk=brk.pk).update(resolution=Break.Resolution.CLEARED)
    again = Break.objects.create(
        break_type=brk.break_type,
        key=brk.key,
        provider_code=brk.provider_code,
        currency=brk.currency,
        first_run=brk.first_run,
        last_run=brk.last_run,
    )
    assert again.pk != brk.pk


def test_an_adjustment_is_idempotent_by_break_identity_not_by_break_id(provider):
    brk, _ = _unreported_deposit_break(provider)
    fixed = services.resolve_break(
        brk=brk, actor=f.StaffUserFactory(), resolution="fixed_by_adjustment", reason="fixed"
    )
    assert fixed.entry.idempotency_key == f"recon-break:{brk.key}"
    # Another row claiming the same identity (as the bug made) books nothing new: the ledger
    # hands back the first entry, and that entry already settles a break.
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX one_break_per_identity")
    twin = Break.objects.create(
        break_type=brk.break_type,
        key=brk.key,
        provider_code=brk.provider_code,
        currency=brk.currency,
        difference=brk.difference,
        internal_reference=brk.internal_reference,
        first_run=brk.first_run,
        last_run=brk.last_run,
    )
    entries = JournalEntry.objects.count()
    with pytest.raises(IntegrityError), transaction.atomic():
        services.resolve_break(
            brk=twin, actor=f.StaffUserFactory(), resolution="fixed_by_adjustment", reason="x"
        )
    assert JournalEntry.objects.count() == entries


def test_migration_0006_supersedes_stored_repeats_and_alerts_on_doubled_money(provider):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("reconciliation.migrations.0006_break_identity")
    brk, _ = _unreported_deposit_break(provider)
    fixed = services.resolve_break(
        brk=brk, actor=f.StaffUserFactory(), resolution="fixed_by_adjustment", reason="fixed"
    )
    # The state the bug left behind: the same identity re-opened, fixed and booked again,
    # then re-opened once more.
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX one_break_per_identity")
    fields = dict(
        break_type=brk.break_type,
        key=brk.key,
        provider_code=brk.provider_code,
        currency=brk.currency,
        difference=brk.difference,
        first_run=brk.first_run,
        last_run=brk.last_run,
    )
    doubled_entry = ledger.post_entry(
        kind=JournalEntry.Kind.RECONCILIATION_ADJUSTMENT,
        legs=[
            (
                ledger.system_account(
                    kind=Account.Kind.PROVIDER_CLEARING, currency="EUR", system_code=PROVIDER
                ),
                Decimal("15.00"),
            ),
            (
                ledger.system_account(
                    kind=Account.Kind.MANUAL_ADJUSTMENT,
                    currency="EUR",
                    system_code="reconciliation",
                ),
                Decimal("-15.00"),
            ),
        ],
        idempotency_key="recon-break-adjustment:legacy",
        request={"legacy": True},
    )
    booked_again = Break.objects.create(
        **fields, status="resolved", resolution="fixed_by_adjustment", entry=doubled_entry
    )
    reopened = Break.objects.create(**fields)

    migration.supersede_repeats(apps, None)

    by_id = {b.pk: (b.status, b.resolution) for b in Break.objects.filter(key=brk.key)}
    assert by_id == {
        fixed.pk: ("resolved", "fixed_by_adjustment"),
        booked_again.pk: ("resolved", "superseded"),
        reopened.pk: ("resolved", "superseded"),
    }
    assert list(reopened.transitions.values_list("from_status", "to_status")) == [
        ("open", "resolved")
    ]
    (alert,) = IntegrityAlert.objects.all()
    assert f"entry #{doubled_entry.pk}" in alert.message
    # The constraint the migration adds next now holds.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "CREATE UNIQUE INDEX one_break_per_identity ON reconciliation_break (key) "
            "WHERE NOT (resolution IN ('cleared', 'superseded'))"
        )
