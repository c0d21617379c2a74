"""Every write of the payments app.

Shape of each action: lock the payment row, ask its state machine for the move, move the
money through `wallets.services` and record a `PaymentTransition`, all in one transaction;
Celery work is enqueued with `transaction.on_commit(robust=True)`: a broker outage after the
commit is logged, not raised, because the sweeper, the janitor and the notification retry job
find whatever was not enqueued. Calls to providers happen outside any
transaction (a slow provider must not hold row locks); their answers are applied afterwards
under the lock like any webhook, so an answer that arrives after a webhook never moves a
payment backwards.
"""

import hashlib
import json
import secrets
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from compliance import services as compliance
from compliance.services import Decision
from wallets import bonus_services
from wallets import services as ledger
from wallets.errors import IdempotencyConflict, MissingReason, PlayerBlocked
from wallets.models import Account, JournalEntry, Player

from . import providers
from .errors import (
    FourEyesViolation,
    InvalidTransition,
    MethodUnavailable,
    NotStaff,
    PaymentRefused,
    RefundNotSupported,
    RefundTooLarge,
)
from .models import (
    Chargeback,
    Deposit,
    Notification,
    PaymentMethod,
    PaymentProvider,
    PaymentTransition,
    PayoutInstrument,
    Refund,
    WebhookEvent,
    Withdrawal,
    WithdrawalApproval,
)
from .providers.base import (
    CANCELLED,
    CHARGEBACK,
    DEPOSIT,
    EXPIRED,
    FAILED,
    PENDING,
    REFUND,
    SUCCEEDED,
    WITHDRAWAL,
    InvalidSignature,
    ProviderEvent,
    ProviderResult,
    ProviderTimeout,
    ProviderUnavailable,
)

DS = Deposit.Status
WS = Withdrawal.Status


def new_reference(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def _fingerprint(request: dict) -> str:
    return hashlib.sha256(
        json.dumps(request, sort_keys=True, default=str, separators=(",", ":")).encode()
    ).hexdigest()


def webhook_url(provider: PaymentProvider) -> str:
    path = reverse("payments-webhook", kwargs={"provider_code": provider.code})
    return settings.PAYMENTS_PUBLIC_BASE_URL.rstrip("/") + path


def _record(subject, from_status: str, *, source: str, actor=None, webhook=None, reason=""):
    """Audit row for a transition that just happened on `subject` (inside its transaction)."""
    field = {Deposit: "deposit", Withdrawal: "withdrawal", Refund: "refund"}[type(subject)]
    PaymentTransition.objects.create(
        **{field: subject},
        from_status=from_status,
        to_status=subject.status,
        actor=actor if getattr(actor, "pk", None) else None,
        webhook=webhook,
        source=source,
        reason=reason[:2000],
    )


# --- deposits ------------------------------------------------------------------------------


def _usable_method(*, method_code: str, currency: str, amount: Decimal) -> PaymentMethod:
    method = (
        PaymentMethod.objects.select_related("provider")
        .filter(code=method_code, is_enabled=True, provider__is_enabled=True)
        .first()
    )
    if method is None:
        raise MethodUnavailable(f"Payment method {method_code!r} is not available.")
    if not method.currencies.filter(code=currency).exists():
        raise MethodUnavailable(f"{method.name} does not take {currency}.", currency=currency)
    if method.min_amount is not None and amount < method.min_amount:
        raise MethodUnavailable(
            f"The minimum for {method.name} is {method.min_amount}.",
            min_amount=str(ledger.quantize_money(method.min_amount, currency)),
        )
    if method.max_amount is not None and amount > method.max_amount:
        raise MethodUnavailable(
            f"The maximum for {method.name} is {method.max_amount}.",
            max_amount=str(ledger.quantize_money(method.max_amount, currency)),
        )
    return method


def create_deposit(
    *,
    player: Player,
    method_code: str,
    amount,
    currency: str,
    idempotency_key: str,
    callback_url: str = "",
    return_url: str = "",
    ip: str | None = None,
) -> Deposit:
    """Start a deposit: compliance, then the provider. Idempotent per player and key: the
    same key with the same request returns the same deposit, with another request it raises
    IdempotencyConflict. The provider is called after the deposit row is committed, so a
    crash in between leaves a `created` deposit the janitor resolves."""
    if not idempotency_key:
        raise MissingReason("An Idempotency-Key is required.")
    amount = ledger.validate_amount(amount, currency)
    request_hash = _fingerprint(
        {
            "method": method_code,
            "amount": str(amount),
            "currency": currency,
            "callback_url": callback_url,
            "return_url": return_url,
        }
    )
    existing = Deposit.objects.filter(player=player, idempotency_key=idempotency_key).first()
    if existing is not None:
        return _replayed(existing, request_hash, idempotency_key)
    if not player.is_active:
        raise PlayerBlocked(
            f"Player {player.external_id} is {player.status}.", status=player.status
        )
    method = _usable_method(method_code=method_code, currency=currency, amount=amount)
    decision = compliance.assess_deposit(
        player=player, amount=amount, currency=currency, method=method.code, ip=ip
    )
    if decision.outcome == Decision.REFUSE:
        raise PaymentRefused("This deposit is not allowed.", reasons=list(decision.reasons))
    try:
        with transaction.atomic():
            deposit = Deposit.objects.create(
                reference=new_reference("dep"),
                player=player,
                provider=method.provider,
                method=method,
                amount=amount,
                currency_id=currency,
                callback_url=callback_url,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                compliance_reasons=list(decision.reasons),
                ip=ip,
                expires_at=timezone.now()
                + timedelta(seconds=method.provider.deposit_timeout_seconds),
            )
            _record(deposit, "", source="api", reason="deposit requested")
    except IntegrityError:
        # A concurrent request with the same key won the unique index.
        existing = Deposit.objects.get(player=player, idempotency_key=idempotency_key)
        return _replayed(existing, request_hash, idempotency_key)

    adapter = providers.adapter_for(method.provider)
    return_url = return_url or settings.PAYMENTS_DEFAULT_RETURN_URL
    try:
        result = adapter.start_payment(
            deposit=deposit, notify_url=webhook_url(method.provider), return_url=return_url
        )
    except ProviderTimeout as exc:
        # The provider may have taken the payment: keep it open for the janitor to poll.
        result = ProviderResult(status=PENDING)
        reason = f"outcome unknown: {exc.message}"
    except ProviderUnavailable as exc:
        result = ProviderResult(
            status=FAILED, decline_code="provider_unavailable", decline_kind="soft"
        )
        reason = exc.message
    else:
        reason = "provider answered"
    return apply_deposit_result(
        deposit_id=deposit.pk, result=result, source="provider", reason=reason
    )


def _replayed(existing, request_hash: str, idempotency_key: str):
    if existing.request_hash != request_hash:
        raise IdempotencyConflict(
            f"Idempotency key {idempotency_key!r} was used for a different request.",
            idempotency_key=idempotency_key,
            reference=existing.reference,
        )
    return existing


def apply_deposit_result(
    *,
    deposit_id: int,
    result: ProviderResult,
    source: str,
    webhook: WebhookEvent | None = None,
    actor=None,
    reason: str = "",
) -> Deposit:
    """Apply what a provider said about a deposit, moving only forwards."""
    with transaction.atomic():
        deposit = Deposit.objects.select_for_update().get(pk=deposit_id)
        _advance_deposit(
            deposit, result, source=source, webhook=webhook, actor=actor, reason=reason
        )
    return deposit


def _advance_deposit(deposit, result, *, source, webhook=None, actor=None, reason="") -> bool:
    """Inside a transaction holding the deposit's lock. Returns whether anything changed.

    A result that would move the deposit backwards (pending after succeeded, failed after
    succeeded) is ignored: providers deliver webhooks late and out of order."""
    before = deposit.status
    now = timezone.now()
    if result.provider_reference and not deposit.provider_reference:
        deposit.provider_reference = result.provider_reference
    if result.status == SUCCEEDED and before in (DS.CREATED, DS.PENDING, DS.EXPIRED):
        received = ledger.quantize_money(
            result.amount_received if result.amount_received is not None else deposit.amount,
            deposit.currency_id,
        )
        if received < deposit.amount and settings.PAYMENTS_CRYPTO_UNDERPAID == "review":
            return _hold_underpaid(deposit, received, source=source, webhook=webhook)
        deposit.succeed(amount_received=received, completed_at=now, is_late=result.is_late)
        try:
            with transaction.atomic():
                ledger.credit_deposit(
                    player=deposit.player,
                    currency=deposit.currency_id,
                    amount=received,
                    provider_code=deposit.provider.code,
                    idempotency_key=f"deposit:{deposit.reference}",
                    external_reference=deposit.reference,
                    metadata={"provider_reference": deposit.provider_reference},
                )
        except PlayerBlocked:
            # The money arrived but the player was frozen meanwhile: keep it out of the
            # wallet until an operator decides (credit on unfreeze, or refund).
            deposit.refresh_from_db()
            return _hold_underpaid(
                deposit, received, source=source, webhook=webhook, why="player blocked"
            )
        reason = reason or (
            f"received {received} of {deposit.amount}" if received != deposit.amount else ""
        )
        if deposit.is_paid_late:
            reason = f"{reason} paid after expiry".strip()
    elif result.status == PENDING and before == DS.CREATED:
        deposit.mark_pending(
            provider_reference=result.provider_reference,
            redirect_url=result.redirect_url,
            instructions=result.instructions,
        )
    elif result.status == FAILED and before in (DS.CREATED, DS.PENDING):
        deposit.fail(
            decline_code=result.decline_code,
            decline_kind=result.decline_kind,
            completed_at=now,
        )
        reason = reason or f"declined {result.decline_code} ({result.decline_kind})"
    elif result.status == EXPIRED and before in (DS.CREATED, DS.PENDING):
        deposit.expire(completed_at=now)
    elif result.status == CANCELLED and before in (DS.CREATED, DS.PENDING):
        deposit.cancel(completed_at=now)
    else:
        if deposit.provider_reference and before in (DS.CREATED, DS.PENDING):
            deposit.save(update_fields=["provider_reference", "updated_at"])
        return False
    deposit.save()
    _record(deposit, before, source=source, webhook=webhook, actor=actor, reason=reason)
    if deposit.is_final:
        _notify_deposit(deposit)
    return True


def _hold_underpaid(deposit, received, *, source, webhook, why="underpaid") -> bool:
    if deposit.is_held_for_review and deposit.amount_received == received:
        return False
    before = deposit.status
    if before == DS.CREATED:
        deposit.mark_pending()
    deposit.is_held_for_review = True
    deposit.amount_received = received
    deposit.save()
    _record(
        deposit,
        before,
        source=source,
        webhook=webhook,
        reason=f"{why}: received {received} of {deposit.amount}, held for review",
    )
    return True


def accept_held_deposit(*, deposit: Deposit, actor, reason: str) -> Deposit:
    """An operator credits a deposit held for review (underpaid crypto, frozen player) with
    what actually arrived."""
    if not reason.strip():
        raise MissingReason("Accepting a held deposit needs a reason.")
    with transaction.atomic():
        locked = Deposit.objects.select_for_update().get(pk=deposit.pk)
        if not locked.is_held_for_review or locked.status not in (DS.PENDING, DS.EXPIRED):
            raise InvalidTransition(f"Deposit {locked.reference} is not held for review.")
        locked.is_held_for_review = False
        # The review setting only guards the automatic path; the operator has decided.
        before = locked.status
        locked.succeed(amount_received=locked.amount_received, completed_at=timezone.now())
        ledger.credit_deposit(
            player=locked.player,
            currency=locked.currency_id,
            amount=locked.amount_received,
            provider_code=locked.provider.code,
            idempotency_key=f"deposit:{locked.reference}",
            external_reference=locked.reference,
            metadata={"accepted_by": actor.pk, "reason": reason},
        )
        locked.save()
        _record(locked, before, source="admin", actor=actor, reason=reason)
        _notify_deposit(locked)
    return locked


def expire_deposit(*, deposit: Deposit, source: str = "janitor", reason: str = "") -> Deposit:
    return apply_deposit_result(
        deposit_id=deposit.pk,
        result=ProviderResult(status=EXPIRED),
        source=source,
        reason=reason or "not completed before its expiry",
    )


# --- refunds and chargebacks ----------------------------------------------------------------


def refund_deposit(*, deposit: Deposit, amount, actor, reason: str) -> Refund:
    """Send money of a succeeded deposit back to where it came from.

    The player's cash is debited when the refund is requested (so it cannot be bet or
    withdrawn meanwhile); a refund the provider fails is reversed back to the player."""
    if not reason.strip():
        raise MissingReason("A refund needs a reason.")
    if not deposit.provider.supports_refunds:
        raise RefundNotSupported(f"{deposit.provider.name} payments are returned as withdrawals.")
    amount = ledger.validate_amount(amount, deposit.currency_id)
    with transaction.atomic():
        locked = Deposit.objects.select_for_update().get(pk=deposit.pk)
        if locked.status not in (DS.SUCCEEDED, DS.PARTIALLY_REFUNDED):
            raise InvalidTransition(f"Deposit {locked.reference} is {locked.status}.")
        in_flight = sum(
            (r.amount for r in locked.refunds.filter(status=Refund.Status.PENDING)), Decimal(0)
        )
        left = locked.credited_amount - locked.refunded_amount - in_flight
        if amount > left:
            raise RefundTooLarge(
                f"At most {ledger.quantize_money(left, locked.currency_id)} can be refunded.",
                refundable=str(ledger.quantize_money(left, locked.currency_id)),
            )
        refund = Refund.objects.create(
            reference=new_reference("ref"),
            deposit=locked,
            amount=amount,
            reason=reason,
            actor=actor,
        )
        _refund_entry(refund, direction=-1)
        _record(refund, "", source="admin", actor=actor, reason=reason)
    adapter = providers.adapter_for(locked.provider)
    try:
        result = adapter.refund(refund=refund, notify_url=webhook_url(locked.provider))
    except ProviderTimeout:
        return refund
    except ProviderUnavailable as exc:
        result = ProviderResult(status=FAILED, decline_code=exc.code)
    return apply_refund_result(refund_id=refund.pk, result=result, source="provider")


def _refund_entry(refund: Refund, *, direction: int) -> JournalEntry:
    """direction -1 takes the refund from the player's cash; +1 gives it back (failed)."""
    deposit = refund.deposit
    accounts = ledger.open_wallet(player=deposit.player, currency=deposit.currency_id)
    clearing = ledger.system_account(
        kind=Account.Kind.PROVIDER_CLEARING,
        currency=deposit.currency_id,
        system_code=deposit.provider.code,
    )
    amount = refund.amount * direction
    key = f"refund:{refund.reference}" if direction < 0 else f"refund-failed:{refund.reference}"
    return ledger.post_entry(
        kind=JournalEntry.Kind.REFUND,
        legs=[(accounts[Account.Kind.PLAYER_CASH], amount), (clearing, -amount)],
        idempotency_key=key,
        request={"refund": refund.reference, "amount": str(amount)},
        external_reference=deposit.reference,
        metadata={"refund": refund.reference},
        actor=refund.actor,
    )


def apply_refund_result(
    *, refund_id: int, result: ProviderResult, source: str, webhook=None
) -> Refund:
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        _advance_refund(refund, result, source=source, webhook=webhook)
    return refund


def _advance_refund(refund, result, *, source, webhook=None) -> bool:
    if refund.status != Refund.Status.PENDING or result.status not in (SUCCEEDED, FAILED):
        return False
    now = timezone.now()
    deposit = Deposit.objects.select_for_update().get(pk=refund.deposit_id)
    if result.status == SUCCEEDED:
        refund.succeed(completed_at=now, provider_reference=result.provider_reference)
        before = deposit.status
        deposit.record_refund(amount=refund.amount)
        deposit.save()
        _record(
            deposit, before, source=source, webhook=webhook, reason=f"refund {refund.reference}"
        )
        _notify_deposit(deposit)
    else:
        refund.fail(completed_at=now)
        _refund_entry(refund, direction=1)
    refund.save()
    _record(refund, Refund.Status.PENDING, source=source, webhook=webhook)
    return True


def record_chargeback(
    *, deposit: Deposit, amount, provider_reference: str, reason: str = ""
) -> Chargeback:
    """The provider took `amount` of a deposit back. Idempotent by `provider_reference`.

    The provider's clearing account is credited (it no longer owes us the money); the
    player's cash pays as much as it holds and the rest is booked to `write_off`, because a
    player balance may never go negative."""
    amount = ledger.validate_amount(amount, deposit.currency_id)
    if not provider_reference:
        raise MissingReason("A chargeback needs the provider's reference.")
    existing = Chargeback.objects.filter(provider_reference=provider_reference).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        Deposit.objects.select_for_update().get(pk=deposit.pk)
        accounts = ledger.open_wallet(player=deposit.player, currency=deposit.currency_id)
        cash = Account.objects.select_for_update(no_key=True).get(
            pk=accounts[Account.Kind.PLAYER_CASH].pk
        )
        from_player = min(cash.balance, amount)
        written_off = amount - from_player
        currency = deposit.currency_id
        legs = [
            (
                ledger.system_account(
                    kind=Account.Kind.PROVIDER_CLEARING,
                    currency=currency,
                    system_code=deposit.provider.code,
                ),
                amount,
            )
        ]
        if from_player:
            legs.append((cash, -from_player))
        if written_off:
            legs.append(
                (
                    ledger.system_account(kind=Account.Kind.WRITE_OFF, currency=currency),
                    -written_off,
                )
            )
        try:
            with transaction.atomic():
                chargeback = Chargeback.objects.create(
                    deposit=deposit,
                    amount=amount,
                    written_off=written_off,
                    provider_reference=provider_reference,
                    reason=reason,
                )
        except IntegrityError:
            return Chargeback.objects.get(provider_reference=provider_reference)
        ledger.post_entry(
            kind=JournalEntry.Kind.CHARGEBACK,
            legs=legs,
            idempotency_key=f"chargeback:{deposit.provider.code}:{provider_reference}",
            request={"deposit": deposit.reference, "amount": str(amount)},
            external_reference=deposit.reference,
            metadata={
                "provider_reference": provider_reference,
                "written_off": str(written_off),
                "reason": reason,
            },
        )
    return chargeback


# --- withdrawals ---------------------------------------------------------------------------


def _threshold(setting: dict, currency: str) -> Decimal | None:
    value = setting.get(currency)
    return None if value is None else Decimal(str(value))


def request_withdrawal(
    *,
    player: Player,
    instrument: PayoutInstrument,
    amount,
    currency: str,
    idempotency_key: str,
    callback_url: str = "",
    ip: str | None = None,
) -> Withdrawal:
    """Hold the money and queue the withdrawal: straight to payout when small and clean,
    to review when compliance asks or the amount passes the review threshold (absent a
    threshold for the currency, always). Over the four-eyes threshold two different staff
    users must approve. Pending bonuses are forfeited: withdrawing ends the bonus."""
    if not idempotency_key:
        raise MissingReason("An Idempotency-Key is required.")
    amount = ledger.validate_amount(amount, currency)
    request_hash = _fingerprint(
        {
            "instrument": instrument.pk,
            "amount": str(amount),
            "currency": currency,
            "callback_url": callback_url,
        }
    )
    existing = Withdrawal.objects.filter(player=player, idempotency_key=idempotency_key).first()
    if existing is not None:
        return _replayed(existing, request_hash, idempotency_key)
    if instrument.player_id != player.pk or not instrument.is_active:
        raise MethodUnavailable("That payout instrument is not available.")
    provider = instrument.provider
    if not provider.is_enabled or not provider.currencies.filter(code=currency).exists():
        raise MethodUnavailable(f"{provider.name} cannot pay out {currency}.", currency=currency)
    decision = compliance.assess_withdrawal(
        player=player, amount=amount, currency=currency, method=instrument.kind, ip=ip
    )
    if decision.outcome == Decision.REFUSE:
        raise PaymentRefused("This withdrawal is not allowed.", reasons=list(decision.reasons))

    review_at = _threshold(settings.PAYMENTS_REVIEW_THRESHOLDS, currency)
    four_eyes_at = _threshold(settings.PAYMENTS_FOUR_EYES_THRESHOLDS, currency)
    needs_two = four_eyes_at is None or amount > four_eyes_at
    reasons = list(decision.reasons) if decision.outcome == Decision.REVIEW else []
    if review_at is None or amount > review_at:
        reasons.append("amount_over_review_threshold")
    if needs_two and "amount_over_review_threshold" not in reasons:
        reasons.append("four_eyes_required")

    try:
        with transaction.atomic():
            # Before the hold: bonus services lock accounts, then bonuses (their lock order).
            bonus_services.forfeit_pending_bonuses(player=player, reason="withdrawal requested")
            withdrawal = Withdrawal.objects.create(
                reference=new_reference("wd"),
                player=player,
                provider=provider,
                instrument=instrument,
                amount=amount,
                currency_id=currency,
                callback_url=callback_url,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                required_approvals=2 if needs_two else 1,
                ip=ip,
            )
            ledger.hold_withdrawal(
                player=player,
                currency=currency,
                amount=amount,
                idempotency_key=f"withdrawal-hold:{withdrawal.reference}",
                external_reference=withdrawal.reference,
            )
            _record(withdrawal, "", source="api", reason="withdrawal requested")
            if reasons:
                withdrawal.send_to_review(reasons=reasons)
                withdrawal.save()
                _record(withdrawal, WS.REQUESTED, source="compliance", reason=", ".join(reasons))
            else:
                _approve(withdrawal, source="auto", reason="under the review threshold")
    except IntegrityError:
        existing = Withdrawal.objects.filter(player=player, idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return _replayed(existing, request_hash, idempotency_key)
    return withdrawal


def _approve(withdrawal, *, source, actor=None, reason=""):
    before = withdrawal.status
    withdrawal.approve()
    withdrawal.save()
    _record(withdrawal, before, source=source, actor=actor, reason=reason)
    from .tasks import start_payout

    pk = withdrawal.pk
    transaction.on_commit(lambda: start_payout.delay(pk), robust=True)


def _locked_withdrawal(withdrawal: Withdrawal) -> Withdrawal:
    return Withdrawal.objects.select_for_update().select_related("provider").get(pk=withdrawal.pk)


def approve_withdrawal(*, withdrawal: Withdrawal, approver, reason: str = "") -> Withdrawal:
    """One staff approval of a withdrawal in review. Four-eyes withdrawals move to approved
    only with approvals from two different staff users; the same user approving twice is
    refused here, whatever the caller (admin, API, shell)."""
    if approver is None or not getattr(approver, "is_staff", False):
        raise NotStaff()
    with transaction.atomic():
        locked = _locked_withdrawal(withdrawal)
        if locked.status != WS.IN_REVIEW:
            raise InvalidTransition(f"Withdrawal {locked.reference} is {locked.status}.")
        if locked.approvals.filter(approver=approver).exists():
            raise FourEyesViolation(
                f"{approver} has already approved {locked.reference}; a second staff user must.",
                reference=locked.reference,
            )
        WithdrawalApproval.objects.create(withdrawal=locked, approver=approver, reason=reason)
        count = locked.approvals.count()
        if count >= locked.required_approvals:
            _approve(locked, source="admin", actor=approver, reason=reason or "approved")
        else:
            PaymentTransition.objects.create(
                withdrawal=locked,
                from_status=locked.status,
                to_status=locked.status,
                actor=approver,
                source="admin",
                reason=f"approval {count} of {locked.required_approvals}: {reason}".strip(": "),
            )
    return locked


def _release(withdrawal, key_suffix: str):
    ledger.release_hold(
        player=withdrawal.player,
        currency=withdrawal.currency_id,
        amount=withdrawal.amount,
        idempotency_key=f"withdrawal-release:{withdrawal.reference}",
        external_reference=withdrawal.reference,
        metadata={"why": key_suffix},
    )


def reject_withdrawal(*, withdrawal: Withdrawal, actor, reason: str) -> Withdrawal:
    if actor is None or not getattr(actor, "is_staff", False):
        raise NotStaff()
    if not reason.strip():
        raise MissingReason("A rejection needs a reason.")
    with transaction.atomic():
        locked = _locked_withdrawal(withdrawal)
        if locked.status not in (WS.REQUESTED, WS.IN_REVIEW, WS.APPROVED):
            raise InvalidTransition(f"Withdrawal {locked.reference} is {locked.status}.")
        before = locked.status
        locked.reject(reason=reason, completed_at=timezone.now())
        locked.save()
        _release(locked, "rejected")
        _record(locked, before, source="admin", actor=actor, reason=reason)
        _notify_withdrawal(locked)
    return locked


def cancel_withdrawal(*, withdrawal: Withdrawal, player: Player) -> Withdrawal:
    """The player takes a withdrawal back while it has not gone to the provider."""
    with transaction.atomic():
        locked = _locked_withdrawal(withdrawal)
        if locked.player_id != player.pk:
            raise InvalidTransition("Not your withdrawal.")
        if locked.status not in Withdrawal.CANCELLABLE:
            raise InvalidTransition(
                f"Withdrawal {locked.reference} is {locked.status} and can no longer be cancelled.",
                status=locked.status,
            )
        before = locked.status
        locked.cancel(completed_at=timezone.now())
        locked.save()
        _release(locked, "cancelled")
        _record(locked, before, source="player", reason="cancelled by the player")
        _notify_withdrawal(locked)
    return locked


def start_payout(*, withdrawal_id: int) -> Withdrawal:
    """Send an approved withdrawal to its provider. `processing` is committed before the
    call so the player can no longer cancel and a second run does not pay twice; the
    provider also gets our reference as its idempotency key."""
    with transaction.atomic():
        withdrawal = Withdrawal.objects.select_for_update().get(pk=withdrawal_id)
        if withdrawal.status != WS.APPROVED:
            return withdrawal
        withdrawal.start_processing(started_at=timezone.now())
        withdrawal.save()
        _record(withdrawal, WS.APPROVED, source="payout", reason="sent to the provider")
    withdrawal = Withdrawal.objects.select_related("provider", "instrument").get(pk=withdrawal_id)
    adapter = providers.adapter_for(withdrawal.provider)
    try:
        result = adapter.start_payout(
            withdrawal=withdrawal, notify_url=webhook_url(withdrawal.provider)
        )
    except ProviderTimeout:
        return withdrawal
    except ProviderUnavailable as exc:
        result = ProviderResult(status=FAILED, decline_code=exc.code, decline_kind="soft")
    return apply_withdrawal_result(withdrawal_id=withdrawal_id, result=result, source="provider")


def apply_withdrawal_result(
    *, withdrawal_id: int, result: ProviderResult, source: str, webhook=None
) -> Withdrawal:
    with transaction.atomic():
        withdrawal = Withdrawal.objects.select_for_update().get(pk=withdrawal_id)
        _advance_withdrawal(withdrawal, result, source=source, webhook=webhook)
    return withdrawal


def _advance_withdrawal(withdrawal, result, *, source, webhook=None) -> bool:
    if withdrawal.status != WS.PROCESSING:
        return False
    if result.provider_reference and not withdrawal.provider_reference:
        withdrawal.provider_reference = result.provider_reference
    now = timezone.now()
    if result.status == SUCCEEDED:
        withdrawal.mark_paid(completed_at=now)
        ledger.settle_withdrawal(
            player=withdrawal.player,
            currency=withdrawal.currency_id,
            amount=withdrawal.amount,
            provider_code=withdrawal.provider.code,
            idempotency_key=f"withdrawal-settle:{withdrawal.reference}",
            external_reference=withdrawal.reference,
            metadata={"provider_reference": withdrawal.provider_reference},
        )
        reason = ""
    elif result.status in (FAILED, CANCELLED):
        withdrawal.fail(
            decline_code=result.decline_code, decline_kind=result.decline_kind, completed_at=now
        )
        _release(withdrawal, "failed")
        reason = f"payout failed {result.decline_code} ({result.decline_kind})"
    else:
        withdrawal.save(update_fields=["provider_reference", "updated_at"])
        return False
    withdrawal.save()
    _record(withdrawal, WS.PROCESSING, source=source, webhook=webhook, reason=reason)
    _notify_withdrawal(withdrawal)
    return True


# --- the webhook inbox ---------------------------------------------------------------------


def receive_webhook(*, provider_code: str, body: bytes, headers: dict) -> WebhookEvent:
    """Store the webhook exactly as received, then (after commit) queue its processing.
    A bad signature is stored for the record and never processed."""
    provider = PaymentProvider.objects.get(code=provider_code)
    headers = {k.lower(): v for k, v in headers.items()}
    adapter = providers.adapter_for(provider)
    try:
        adapter.verify_webhook(body=body, headers=headers)
    except InvalidSignature as exc:
        is_valid, error = False, str(exc)
    else:
        is_valid, error = True, ""
    with transaction.atomic():
        event = store_webhook(
            provider=provider,
            body=body,
            headers=headers,
            is_signature_valid=is_valid,
            signature_error=error,
        )
        if is_valid:
            from .tasks import process_webhook

            transaction.on_commit(lambda: process_webhook.delay(event.pk), robust=True)
    return event


def store_webhook(
    *, provider, body: bytes, headers: dict, is_signature_valid: bool, signature_error: str = ""
) -> WebhookEvent:
    """The inbox row alone, without queueing (the sweeper will find it)."""
    return WebhookEvent.objects.create(
        provider=provider,
        body=body.decode("utf-8", errors="replace"),
        headers=headers,
        is_signature_valid=is_signature_valid,
        signature_error=signature_error[:200],
        outcome=WebhookEvent.Outcome.PENDING
        if is_signature_valid
        else WebhookEvent.Outcome.REJECTED,
    )


def process_webhook(*, event_id: int) -> WebhookEvent:
    """Apply one stored webhook, once. The event row is locked for the whole transaction, so
    two workers given the same event (a redelivery, the sweeper) apply it once; the payment
    moves forward only, so a duplicate or late event changes nothing."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().select_related("provider").get(pk=event_id)
        if event.processed_at is not None or not event.is_signature_valid:
            return event
        event.attempts += 1
        adapter = providers.adapter_for(event.provider)
        try:
            parsed = adapter.parse_webhook(body=event.body.encode(), headers=event.headers)
        except (ValueError, KeyError, TypeError) as exc:
            event.outcome = WebhookEvent.Outcome.ERROR
            event.last_error = f"unparseable: {exc!r}"[:2000]
            event.processed_at = timezone.now()
            event.save()
            return event
        event.event_type = parsed.event_type[:64]
        event.payment_reference = parsed.reference[:200]
        changed = _apply_event(event, parsed)
        event.outcome = WebhookEvent.Outcome.APPLIED if changed else WebhookEvent.Outcome.NO_CHANGE
        event.processed_at = timezone.now()
        event.save(
            update_fields=[
                "attempts",
                "event_type",
                "payment_reference",
                "deposit",
                "withdrawal",
                "outcome",
                "last_error",
                "processed_at",
            ]
        )
    return event


def _apply_event(event: WebhookEvent, parsed: ProviderEvent) -> bool:
    if parsed.subject == DEPOSIT:
        deposit = (
            Deposit.objects.select_for_update()
            .filter(reference=parsed.reference, provider=event.provider)
            .first()
        )
        if deposit is None:
            event.last_error = f"no deposit {parsed.reference}"
            return False
        event.deposit = deposit
        if parsed.result.status == CHARGEBACK:
            reference = f"{parsed.result.provider_reference}:chargeback"
            if Chargeback.objects.filter(provider_reference=reference).exists():
                return False
            record_chargeback(
                deposit=deposit,
                amount=deposit.credited_amount,
                provider_reference=reference,
                reason=parsed.event_type,
            )
            return True
        return _advance_deposit(deposit, parsed.result, source="webhook", webhook=event)
    if parsed.subject == WITHDRAWAL:
        withdrawal = (
            Withdrawal.objects.select_for_update()
            .filter(reference=parsed.reference, provider=event.provider)
            .first()
        )
        if withdrawal is None:
            event.last_error = f"no withdrawal {parsed.reference}"
            return False
        event.withdrawal = withdrawal
        return _advance_withdrawal(withdrawal, parsed.result, source="webhook", webhook=event)
    if parsed.subject == REFUND:
        refund = Refund.objects.select_for_update().filter(reference=parsed.reference).first()
        if refund is None:
            event.last_error = f"no refund {parsed.reference}"
            return False
        event.deposit_id = refund.deposit_id
        return _advance_refund(refund, parsed.result, source="webhook", webhook=event)
    return False


def record_webhook_failure(*, event_id: int, error: str) -> None:
    """Count a processing attempt that raised; the row stays unprocessed for the sweeper."""
    WebhookEvent.objects.filter(pk=event_id, processed_at__isnull=True).update(
        last_error=error[:2000], outcome=WebhookEvent.Outcome.ERROR
    )


def unprocessed_webhook_ids(*, older_than: timedelta, limit: int = 1000) -> list[int]:
    cutoff = timezone.now() - older_than
    return list(
        WebhookEvent.objects.filter(
            processed_at__isnull=True, is_signature_valid=True, received_at__lte=cutoff
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )


# --- the stuck-payment janitor -------------------------------------------------------------


def poll_stuck_payments(*, stuck_after: timedelta) -> dict[str, int]:
    """Ask providers about deposits, payouts and refunds open longer than `stuck_after`, apply
    what they say, and expire deposits past their expiry that the provider has nothing final
    on. Approved withdrawals whose payout task was lost are sent again."""
    from .tasks import start_payout as start_payout_task

    cutoff = timezone.now() - stuck_after
    counts = {
        "deposits_polled": 0,
        "deposits_expired": 0,
        "payouts_polled": 0,
        "payouts_sent": 0,
        "refunds_polled": 0,
    }
    stuck = Deposit.objects.filter(
        status__in=[DS.CREATED, DS.PENDING], updated_at__lte=cutoff, is_held_for_review=False
    ).select_related("provider")
    for deposit in stuck.order_by("created_at")[:500]:
        adapter = providers.adapter_for(deposit.provider)
        try:
            result = adapter.fetch_payment_status(deposit=deposit)
        except (ProviderTimeout, ProviderUnavailable):
            continue
        counts["deposits_polled"] += 1
        if result is not None and result.status != PENDING:
            apply_deposit_result(
                deposit_id=deposit.pk, result=result, source="janitor", reason="polled"
            )
        elif deposit.expires_at <= timezone.now():
            expire_deposit(deposit=deposit)
            counts["deposits_expired"] += 1
        elif result is not None:
            apply_deposit_result(deposit_id=deposit.pk, result=result, source="janitor")
    for withdrawal in Withdrawal.objects.filter(status=WS.APPROVED, updated_at__lte=cutoff)[:500]:
        start_payout_task.delay(withdrawal.pk)
        counts["payouts_sent"] += 1
    processing = Withdrawal.objects.filter(
        status=WS.PROCESSING, updated_at__lte=cutoff
    ).select_related("provider", "instrument")
    for withdrawal in processing[:500]:
        adapter = providers.adapter_for(withdrawal.provider)
        try:
            result = adapter.fetch_payout_status(withdrawal=withdrawal)
        except (ProviderTimeout, ProviderUnavailable):
            continue
        counts["payouts_polled"] += 1
        if result is not None:
            apply_withdrawal_result(withdrawal_id=withdrawal.pk, result=result, source="janitor")
    refunds = Refund.objects.filter(
        status=Refund.Status.PENDING, created_at__lte=cutoff
    ).select_related("deposit__provider")
    for refund in refunds[:500]:
        adapter = providers.adapter_for(refund.deposit.provider)
        try:
            result = adapter.fetch_refund_status(refund=refund)
        except (ProviderTimeout, ProviderUnavailable):
            continue
        counts["refunds_polled"] += 1
        if result is not None:
            apply_refund_result(refund_id=refund.pk, result=result, source="janitor")
    return counts


# --- notifications to the casino -----------------------------------------------------------


def _payload(subject) -> dict:
    currency = subject.currency_id
    body = {
        "type": "deposit" if isinstance(subject, Deposit) else "withdrawal",
        "reference": subject.reference,
        "status": subject.status,
        "player": subject.player.external_id,
        "amount": str(ledger.quantize_money(subject.amount, currency)),
        "currency": currency,
        "provider": subject.provider.code,
        "provider_reference": subject.provider_reference,
        "decline_code": subject.decline_code,
        "completed_at": subject.completed_at.isoformat() if subject.completed_at else None,
    }
    if isinstance(subject, Deposit):
        body["amount_received"] = (
            str(ledger.quantize_money(subject.amount_received, currency))
            if subject.amount_received is not None
            else None
        )
        body["refunded_amount"] = str(ledger.quantize_money(subject.refunded_amount, currency))
        body["is_paid_late"] = subject.is_paid_late
    return body


def _notify(subject, field: str) -> None:
    if not subject.callback_url:
        return
    notification = Notification.objects.create(
        **{field: subject},
        url=subject.callback_url,
        payload=_payload(subject),
        next_attempt_at=timezone.now(),
    )
    from .tasks import deliver_notification

    transaction.on_commit(lambda: deliver_notification.delay(notification.pk), robust=True)


def _notify_deposit(deposit):
    _notify(deposit, "deposit")


def _notify_withdrawal(withdrawal):
    _notify(withdrawal, "withdrawal")


def resend_notification(*, notification: Notification, actor=None) -> Notification:
    """Deliver again (an operator's action): a gave-up or delivered notification is queued
    anew with its original payload."""
    from .tasks import deliver_notification

    with transaction.atomic():
        locked = Notification.objects.select_for_update().get(pk=notification.pk)
        locked.status = Notification.Status.PENDING
        locked.next_attempt_at = timezone.now()
        locked.save(update_fields=["status", "next_attempt_at"])
        transaction.on_commit(lambda: deliver_notification.delay(locked.pk), robust=True)
    return locked


def due_notification_ids(*, limit: int = 1000) -> list[int]:
    return list(
        Notification.objects.filter(
            status=Notification.Status.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


# --- payout instruments --------------------------------------------------------------------

_INSTRUMENT_PROVIDER_KIND = {
    PayoutInstrument.Kind.CARD_TOKEN: PaymentProvider.Kind.CARD,
    PayoutInstrument.Kind.IBAN: PaymentProvider.Kind.OPEN_BANKING,
    PayoutInstrument.Kind.EWALLET: PaymentProvider.Kind.EWALLET,
    PayoutInstrument.Kind.CRYPTO: PaymentProvider.Kind.CRYPTO,
}


def add_payout_instrument(
    *,
    player: Player,
    kind: str,
    identifier: str,
    network: str = "",
    holder_name: str = "",
    label: str = "",
) -> PayoutInstrument:
    """Validate and save where the player wants withdrawals paid; the same destination twice
    returns the saved one (re-activated)."""
    from . import instruments

    K = PayoutInstrument.Kind
    if kind == K.IBAN:
        identifier, network = instruments.normalise_iban(identifier), ""
        if not holder_name.strip():
            raise instruments.InvalidInstrument("A bank payout needs the account holder's name.")
    elif kind == K.CRYPTO:
        identifier = instruments.validate_crypto_address(identifier, network)
    elif kind == K.CARD_TOKEN:
        identifier, network = instruments.validate_card_token(identifier), ""
    elif kind == K.EWALLET:
        identifier, network = instruments.validate_ewallet_account(identifier), ""
    else:
        raise instruments.InvalidInstrument(f"Unknown instrument kind {kind!r}.")
    provider = (
        PaymentProvider.objects.filter(kind=_INSTRUMENT_PROVIDER_KIND[kind], is_enabled=True)
        .order_by("pk")
        .first()
    )
    if provider is None:
        raise MethodUnavailable(f"No provider pays out to {K(kind).label} right now.")
    instrument, created = PayoutInstrument.objects.get_or_create(
        player=player,
        kind=kind,
        network=network,
        identifier=identifier,
        defaults={"provider": provider, "holder_name": holder_name, "label": label},
    )
    if not created and not instrument.is_active:
        instrument.is_active = True
        instrument.save(update_fields=["is_active"])
    return instrument


def deactivate_payout_instrument(*, instrument: PayoutInstrument) -> PayoutInstrument:
    instrument.is_active = False
    instrument.save(update_fields=["is_active"])
    return instrument


# --- setup ---------------------------------------------------------------------------------

SANDBOX_PROVIDERS = [
    # code, name, kind, base path, methods (code, name, currencies)
    (
        "sandbox-card",
        "Sandbox Card Acquirer",
        "card",
        "",
        [("card", "Card", ["EUR", "USD", "GBP", "JPY"])],
    ),
    (
        "sandbox-wallet",
        "Sandbox E-wallet",
        "ewallet",
        "",
        [("ewallet", "E-wallet", ["EUR", "USD", "GBP"])],
    ),
    (
        "sandbox-bank",
        "Sandbox Open Banking",
        "open_banking",
        "ob/",
        [("bank_transfer", "Pay by bank", ["EUR", "GBP"])],
    ),
    (
        "sandbox-crypto",
        "Sandbox Crypto Processor",
        "crypto",
        "",
        [("btc", "Bitcoin", ["BTC"]), ("eth", "Ether", ["ETH"]), ("usdt", "Tether", ["USDT"])],
    ),
]


def ensure_sandbox_providers(*, base_url: str) -> list[PaymentProvider]:
    """Create or re-point the four sandbox providers at `base_url` (this server). Their
    secrets are random per installation, never from the repository."""
    made = []
    for code, name, kind, sub_path, methods in SANDBOX_PROVIDERS:
        provider, _ = PaymentProvider.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "kind": kind,
                "merchant_id": f"merchant-{code}",
                "api_key": secrets.token_urlsafe(24),
                "webhook_secret": secrets.token_urlsafe(24),
                "api_base_url": "http://invalid/",
            },
        )
        provider.api_base_url = f"{base_url.rstrip('/')}/api/v1/sandbox/{code}/{sub_path}"
        provider.save(update_fields=["api_base_url"])
        all_currencies = set()
        for method_code, method_name, currencies in methods:
            method, _ = PaymentMethod.objects.get_or_create(
                code=method_code, defaults={"name": method_name, "provider": provider}
            )
            method.currencies.set(currencies)
            all_currencies.update(currencies)
        provider.currencies.set(sorted(all_currencies))
        made.append(provider)
    return made
