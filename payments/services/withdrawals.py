"""Withdrawals: hold, review (four-eyes), payout, settle or release; payout instruments."""

from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance import services as compliance
from compliance.services import Decision
from wallets import bonus_services, money
from wallets import services as ledger
from wallets.errors import MissingReason
from wallets.models import Player

from .. import providers
from ..errors import (
    FourEyesViolation,
    InvalidTransition,
    MethodUnavailable,
    NotStaff,
    PaymentRefused,
)
from ..models import (
    PaymentProvider,
    PaymentTransition,
    PayoutInstrument,
    Withdrawal,
    WithdrawalApproval,
)
from ..providers.base import (
    CANCELLED,
    FAILED,
    SUCCEEDED,
    ProviderResult,
    ProviderTimeout,
    ProviderUnavailable,
)
from .casino import notify_withdrawal
from .common import fingerprint, new_reference, record_transition, replayed, webhook_url

WS = Withdrawal.Status


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
    amount = money.validate_amount(amount, currency)
    request_hash = fingerprint(
        {
            "instrument": instrument.pk,
            "amount": str(amount),
            "currency": currency,
            "callback_url": callback_url,
        }
    )
    existing = Withdrawal.objects.filter(player=player, idempotency_key=idempotency_key).first()
    if existing is not None:
        return replayed(existing, request_hash, idempotency_key)
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
                metadata=instrument.instrument_metadata,
            )
            record_transition(withdrawal, "", source="api", reason="withdrawal requested")
            if reasons:
                withdrawal.send_to_review(reasons=reasons)
                withdrawal.save()
                record_transition(
                    withdrawal, WS.REQUESTED, source="compliance", reason=", ".join(reasons)
                )
            else:
                _approve(withdrawal, source="auto", reason="under the review threshold")
    except IntegrityError:
        existing = Withdrawal.objects.filter(player=player, idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return replayed(existing, request_hash, idempotency_key)
    return withdrawal


def _approve(withdrawal, *, source, actor=None, reason=""):
    before = withdrawal.status
    withdrawal.approve()
    withdrawal.save()
    record_transition(withdrawal, before, source=source, actor=actor, reason=reason)
    from ..tasks import start_payout

    pk = withdrawal.pk
    transaction.on_commit(lambda: start_payout.delay(pk), robust=True)


def _locked_withdrawal(withdrawal: Withdrawal) -> Withdrawal:
    return Withdrawal.objects.select_for_update().select_related("provider").get(pk=withdrawal.pk)


def _may_review(user) -> bool:
    """Staff with the review permission (docs/roles.md): checked here as well as in the admin,
    so no other entry point (shell, a future API) approves or rejects without it."""
    return (
        user is not None
        and getattr(user, "is_staff", False)
        and user.has_perm("payments.review_withdrawals")
    )


def approve_withdrawal(*, withdrawal: Withdrawal, approver, reason: str = "") -> Withdrawal:
    """One staff approval of a withdrawal in review. Four-eyes withdrawals move to approved
    only with approvals from two different staff users; the same user approving twice is
    refused here, whatever the caller (admin, API, shell)."""
    if not _may_review(approver):
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
    if not _may_review(actor):
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
        record_transition(locked, before, source="admin", actor=actor, reason=reason)
        notify_withdrawal(locked)
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
        record_transition(locked, before, source="player", reason="cancelled by the player")
        notify_withdrawal(locked)
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
        record_transition(withdrawal, WS.APPROVED, source="payout", reason="sent to the provider")
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
        advance_withdrawal(withdrawal, result, source=source, webhook=webhook)
    return withdrawal


def advance_withdrawal(withdrawal, result, *, source, webhook=None) -> bool:
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
            metadata={
                "provider_reference": withdrawal.provider_reference,
                **withdrawal.instrument.instrument_metadata,
            },
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
    record_transition(withdrawal, WS.PROCESSING, source=source, webhook=webhook, reason=reason)
    notify_withdrawal(withdrawal)
    return True


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
    from .. import instruments

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
    from ..providers import CONNECTORS

    # The first enabled provider of the instrument's kind whose protocol can pay out.
    provider = next(
        (
            candidate
            for candidate in PaymentProvider.objects.filter(
                kind=_INSTRUMENT_PROVIDER_KIND[kind], is_enabled=True
            ).order_by("pk")
            if CONNECTORS[candidate.protocol].supports_payouts
        ),
        None,
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
