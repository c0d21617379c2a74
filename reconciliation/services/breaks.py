"""Working a break: investigate, resolve, write off (with a second user's approval above the
threshold). Every move is one locked transaction that records a BreakTransition; moves that
book money do it through `wallets.services.post_entry` in the same transaction.

The money a break books is its `difference` (provider minus ours, merchant's side) between
the provider's clearing account and a counter account: `write_off` for write-offs,
`manual_adjustment` (system code "reconciliation") for fixes by adjustment. Either way the
clearing account ends up where the provider says it is.
"""

from decimal import Decimal

import django_fsm as fsm
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from wallets import services as ledger
from wallets.models import Account, JournalEntry
from wallets.money import quantize_money

from ..errors import BreakTransitionRefused, FourEyesRequired, NothingToBook
from ..models import Break, BreakTransition, LineMatch

Resolution = Break.Resolution
ADJUSTMENT_SYSTEM_CODE = "reconciliation"


def write_off_threshold(currency: str) -> Decimal:
    thresholds = settings.RECONCILIATION_WRITE_OFF_APPROVAL_THRESHOLDS
    return Decimal(str(thresholds.get(currency, thresholds.get("*", "0"))))


def _locked(brk: Break) -> Break:
    return Break.objects.select_for_update().get(pk=brk.pk)


def _move(brk: Break, transition: str, *, actor, reason: str, **kwargs) -> Break:
    """Inside the caller's transaction, on a locked break."""
    before = brk.status
    method = getattr(brk, transition)
    if not fsm.can_proceed(method):
        raise BreakTransitionRefused(
            f"Break {brk.pk} is {brk.status}; it cannot {transition.replace('_', ' ')}.",
            status=brk.status,
        )
    method(**kwargs)
    if brk.status in (Break.Status.RESOLVED, Break.Status.WRITTEN_OFF):
        brk.closed_at = timezone.now()
    brk.save()
    BreakTransition.objects.create(
        brk=brk, from_status=before, to_status=brk.status, actor=actor, reason=reason
    )
    if brk.line_id and brk.status in (Break.Status.RESOLVED, Break.Status.WRITTEN_OFF):
        # The line is settled for good: later runs leave it alone and its fee gets booked.
        LineMatch.objects.filter(line_id=brk.line_id).update(status=LineMatch.Status.RESOLVED)
    return brk


def _require_reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise BreakTransitionRefused("Say why: the reason goes into the audit trail.")
    return reason.strip()


def money_key(brk: Break) -> str:
    """The idempotency key of the one entry a break identity may book (its type and subject,
    not its id): whatever happened to the break rows, an identity moves money once. A second
    attempt under another counter account is refused by the ledger as a conflict."""
    return f"recon-break:{brk.key}"


def _book_difference(brk: Break, *, counter_kind: str, counter_code: str, actor):
    if not brk.difference:
        raise NothingToBook(f"Break {brk.pk} has no difference to book.")
    amount = quantize_money(brk.difference, brk.currency)
    clearing = ledger.system_account(
        kind=Account.Kind.PROVIDER_CLEARING, currency=brk.currency, system_code=brk.provider_code
    )
    counter = ledger.system_account(
        kind=counter_kind, currency=brk.currency, system_code=counter_code
    )
    return ledger.post_entry(
        kind=JournalEntry.Kind.RECONCILIATION_ADJUSTMENT,
        legs=[(clearing, -amount), (counter, amount)],
        idempotency_key=money_key(brk),
        request={"break": brk.key, "amount": str(amount), "counter": counter_kind},
        external_reference=brk.internal_reference,
        metadata={"break": brk.pk, "break_key": brk.key, "break_type": brk.break_type},
        actor=actor,
    )


def investigate_break(*, brk: Break, actor, assignee=None, reason: str = "") -> Break:
    with transaction.atomic():
        locked = _locked(brk)
        return _move(locked, "investigate", actor=actor, reason=reason, assignee=assignee or actor)


def resolve_break(*, brk: Break, actor, resolution: str, reason: str) -> Break:
    """Close a break. `fixed_by_adjustment` books the difference against the adjustment
    account; `provider_corrected` and `accepted` move no money."""
    reason = _require_reason(reason)
    if resolution not in (
        Resolution.FIXED_BY_ADJUSTMENT,
        Resolution.PROVIDER_CORRECTED,
        Resolution.ACCEPTED,
    ):
        raise BreakTransitionRefused(f"{resolution!r} is not a resolution.")
    with transaction.atomic():
        locked = _locked(brk)
        entry = None
        if resolution == Resolution.FIXED_BY_ADJUSTMENT and locked.status in Break.ACTIVE:
            entry = _book_difference(
                locked,
                counter_kind=Account.Kind.MANUAL_ADJUSTMENT,
                counter_code=ADJUSTMENT_SYSTEM_CODE,
                actor=actor,
            )
        return _move(
            locked,
            "resolve",
            actor=actor,
            reason=reason,
            resolution=resolution,
            closer=actor,
            entry=entry,
        )


def request_write_off(*, brk: Break, actor, reason: str) -> Break:
    """Write the difference off. Up to the currency's threshold it is booked at once; above
    it the break waits for a second user's approval."""
    reason = _require_reason(reason)
    with transaction.atomic():
        locked = _locked(brk)
        if abs(locked.difference) <= write_off_threshold(locked.currency):
            return _write_off(locked, actor=actor, reason=reason)
        return _move(locked, "request_write_off", actor=actor, reason=reason, requester=actor)


def approve_write_off(*, brk: Break, approver, reason: str = "approved") -> Break:
    """The second pair of eyes: someone other than the requester, holding the
    approve_write_off permission. Refused otherwise, whoever calls."""
    with transaction.atomic():
        locked = _locked(brk)
        if locked.status != Break.Status.AWAITING_APPROVAL:
            raise BreakTransitionRefused(
                f"Break {locked.pk} is {locked.status}, not awaiting approval.",
                status=locked.status,
            )
        if approver is None or not approver.has_perm("reconciliation.approve_write_off"):
            raise FourEyesRequired("Approving a write-off needs the approve_write_off permission.")
        if approver.pk == locked.write_off_requested_by_id:
            raise FourEyesRequired("The user who asked for the write-off cannot approve it.")
        return _write_off(locked, actor=approver, reason=reason or "approved")


def reject_write_off(*, brk: Break, actor, reason: str) -> Break:
    reason = _require_reason(reason)
    with transaction.atomic():
        locked = _locked(brk)
        return _move(locked, "reject_write_off", actor=actor, reason=reason)


def _write_off(locked: Break, *, actor, reason: str) -> Break:
    entry = _book_difference(
        locked,
        counter_kind=Account.Kind.WRITE_OFF,
        counter_code="",
        actor=actor,
    )
    return _move(locked, "write_off", actor=actor, reason=reason, closer=actor, entry=entry)
