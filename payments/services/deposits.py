"""Deposits: start at a provider, apply what providers say (forward only), credit the wallet."""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance import services as compliance
from compliance.services import Decision
from wallets import money
from wallets import services as ledger
from wallets.errors import MissingReason, PlayerBlocked
from wallets.models import Player

from .. import providers
from ..errors import InvalidTransition, MethodUnavailable, PaymentRefused
from ..models import Deposit, PaymentMethod, WebhookEvent
from ..providers.base import (
    CANCELLED,
    EXPIRED,
    FAILED,
    PENDING,
    SUCCEEDED,
    ProviderResult,
    ProviderTimeout,
    ProviderUnavailable,
)
from .casino import notify_deposit
from .chargebacks import apply_held_chargebacks
from .common import fingerprint, new_reference, record_transition, replayed, webhook_url

DS = Deposit.Status


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
            min_amount=str(money.quantize_money(method.min_amount, currency)),
        )
    if method.max_amount is not None and amount > method.max_amount:
        raise MethodUnavailable(
            f"The maximum for {method.name} is {method.max_amount}.",
            max_amount=str(money.quantize_money(method.max_amount, currency)),
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
    payment_method: dict | None = None,
) -> Deposit:
    """Start a deposit: compliance, then the provider. Idempotent per player and key: the
    same key with the same request returns the same deposit, with another request it raises
    IdempotencyConflict. The provider is called after the deposit row is committed, so a
    crash in between leaves a `created` deposit the janitor resolves. `payment_method` (the
    card the casino's front end collected with the provider's components) goes to the
    provider only: it is never stored, and only its digest takes part in idempotency."""
    if not idempotency_key:
        raise MissingReason("An Idempotency-Key is required.")
    amount = money.validate_amount(amount, currency)
    request_hash = fingerprint(
        {
            "method": method_code,
            "amount": str(amount),
            "currency": currency,
            "callback_url": callback_url,
            "return_url": return_url,
            "payment_method": fingerprint(payment_method) if payment_method else "",
        }
    )
    existing = Deposit.objects.filter(player=player, idempotency_key=idempotency_key).first()
    if existing is not None:
        return replayed(existing, request_hash, idempotency_key)
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
            record_transition(deposit, "", source="api", reason="deposit requested")
    except IntegrityError:
        # A concurrent request with the same key won the unique index.
        existing = Deposit.objects.get(player=player, idempotency_key=idempotency_key)
        return replayed(existing, request_hash, idempotency_key)

    adapter = providers.adapter_for(method.provider)
    return_url = return_url or settings.PAYMENTS_DEFAULT_RETURN_URL
    try:
        result = adapter.start_payment(
            deposit=deposit,
            notify_url=webhook_url(method.provider),
            return_url=return_url,
            payment_method=payment_method,
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
        advance_deposit(deposit, result, source=source, webhook=webhook, actor=actor, reason=reason)
    return deposit


def advance_deposit(deposit, result, *, source, webhook=None, actor=None, reason="") -> bool:
    """Inside a transaction holding the deposit's lock. Returns whether anything changed.

    A result that would move the deposit backwards (pending after succeeded, failed after
    succeeded) is ignored: providers deliver webhooks late and out of order."""
    before = deposit.status
    now = timezone.now()
    credited = False
    if result.provider_reference and not deposit.provider_reference:
        deposit.provider_reference = result.provider_reference
    _note_payer(deposit, result)
    if (
        result.status == SUCCEEDED
        and result.currency
        and result.currency != deposit.currency_id
        and before in (DS.CREATED, DS.PENDING, DS.EXPIRED)
    ):
        return _hold_wrong_currency(deposit, result, source=source, webhook=webhook)
    if result.status == SUCCEEDED and before in (DS.CREATED, DS.PENDING, DS.EXPIRED):
        received = money.quantize_money(
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
                    metadata={
                        "provider_reference": deposit.provider_reference,
                        **deposit.instrument_metadata,
                    },
                )
        except PlayerBlocked:
            # The money arrived but the player was frozen meanwhile: keep it out of the
            # wallet until an operator decides (credit on unfreeze, or refund).
            deposit.refresh_from_db()
            _note_payer(deposit, result)
            return _hold_underpaid(
                deposit, received, source=source, webhook=webhook, why="player blocked"
            )
        credited = True
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
        if before in (DS.CREATED, DS.PENDING) and (
            deposit.provider_reference or deposit.payer_instrument_fingerprint or deposit.payer_name
        ):
            deposit.save(
                update_fields=[
                    "provider_reference",
                    "payer_instrument_type",
                    "payer_instrument_fingerprint",
                    "payer_name",
                    "updated_at",
                ]
            )
        return False
    deposit.save()
    if credited:
        # A chargeback that overtook the success is applied now that the money is in.
        apply_held_chargebacks(deposit)
    record_transition(deposit, before, source=source, webhook=webhook, actor=actor, reason=reason)
    if deposit.is_final:
        notify_deposit(deposit)
    return True


def _note_payer(deposit, result) -> None:
    """Keep the first instrument a provider names: a later event never rewrites who paid."""
    payer = result.payer_instrument
    if payer is not None and not deposit.payer_instrument_fingerprint:
        deposit.payer_instrument_type = payer.type
        deposit.payer_instrument_fingerprint = payer.fingerprint
    if result.payer_name and not deposit.payer_name:
        deposit.payer_name = result.payer_name[:140]


def _hold_underpaid(deposit, received, *, source, webhook, why="underpaid") -> bool:
    if deposit.is_held_for_review and deposit.amount_received == received:
        return False
    deposit.amount_received = received
    return _hold_for_review(
        deposit,
        source=source,
        webhook=webhook,
        reason=f"{why}: received {received} of {deposit.amount}, held for review",
    )


def _hold_wrong_currency(deposit, result, *, source, webhook) -> bool:
    """The provider says the player paid in another currency than the deposit asked for: no
    amount of ours describes that money, so nothing is credited; an operator refunds it."""
    if deposit.is_held_for_review:
        return False
    return _hold_for_review(
        deposit,
        source=source,
        webhook=webhook,
        reason=(
            f"paid {result.amount_received} {result.currency}, not {deposit.currency_id}: "
            "held for review, nothing credited"
        ),
    )


def _hold_for_review(deposit, *, source, webhook, reason) -> bool:
    """Keep the money out of the wallet until an operator decides; the deposit stays open."""
    before = deposit.status
    if before == DS.CREATED:
        deposit.mark_pending()
    deposit.is_held_for_review = True
    deposit.save()
    record_transition(deposit, before, source=source, webhook=webhook, reason=reason)
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
        if locked.amount_received is None:
            raise InvalidTransition(
                f"Deposit {locked.reference} was paid in another currency: refund it instead."
            )
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
            metadata={"accepted_by": actor.pk, "reason": reason, **locked.instrument_metadata},
        )
        locked.save()
        apply_held_chargebacks(locked)
        record_transition(locked, before, source="admin", actor=actor, reason=reason)
        notify_deposit(locked)
    return locked


def submit_payment_details(*, deposit: Deposit, details: dict) -> Deposit:
    """The player is back from the provider's redirect: hand the provider what the redirect
    carried (Adyen's `redirectResult`) or ask it for the status, and apply the answer like any
    other. Nothing the player's browser sends is trusted by itself."""
    if deposit.status not in (DS.CREATED, DS.PENDING):
        return deposit
    adapter = providers.adapter_for(deposit.provider)
    try:
        result = adapter.submit_payment_details(deposit=deposit, details=details)
    except (ProviderTimeout, ProviderUnavailable):
        return deposit  # the webhook or the janitor will tell
    if result is None:
        return deposit
    return apply_deposit_result(
        deposit_id=deposit.pk, result=result, source="provider", reason="player returned"
    )


def expire_deposit(*, deposit: Deposit, source: str = "janitor", reason: str = "") -> Deposit:
    return apply_deposit_result(
        deposit_id=deposit.pk,
        result=ProviderResult(status=EXPIRED),
        source=source,
        reason=reason or "not completed before its expiry",
    )
