"""What every simulated provider shares: scenarios chosen by magic amounts, the sandbox
objects, hosted pages, and webhooks sent later through Celery. Each protocol's own module
(`payments/sandbox/<protocol>.py`, listed in `protocols.py`) words the objects and signs the
webhooks exactly as that provider does.

The scenario is the last two digits of the amount in minor units (EUR 10.05 → "05",
BTC 0.00100007 → "07", JPY 1,009 → "09"), like a PSP's test card numbers.
"""

import functools
import secrets
import time
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from payments.models import PaymentProvider
from payments.providers.base import provider_secret
from wallets.money import currency_exponent

from .models import SandboxPayment

SUCCESS = "success"
INSTANT = "instant"
SOFT_DECLINE = "soft_decline"
HARD_DECLINE = "hard_decline"
TIMEOUT = "timeout"
WEBHOOK_DELAYED = "webhook_delayed"
WEBHOOK_TWICE = "webhook_twice"
OUT_OF_ORDER = "out_of_order"
BAD_SIGNATURE = "bad_signature"
CHARGEBACK = "chargeback"
CHARGEBACK_FIRST = "chargeback_first"

SCENARIOS = {
    "01": INSTANT,
    "05": SOFT_DECLINE,
    "06": HARD_DECLINE,
    "07": TIMEOUT,
    "08": WEBHOOK_DELAYED,
    "09": WEBHOOK_TWICE,
    "10": OUT_OF_ORDER,
    "11": BAD_SIGNATURE,
    "12": CHARGEBACK,
    "13": CHARGEBACK_FIRST,
}

# Outcomes a sandbox object ends in, in each provider's vocabulary via its dialect.
PAID = "paid"
PENDING = "pending"
DECLINED_SOFT = "declined_soft"
DECLINED_HARD = "declined_hard"
CANCELLED = "cancelled"
EXPIRED = "expired"
# Only in answers: accepted, result to follow by webhook.
PROCESSING = "processing"
# Only in webhooks, after PAID: the cardholder disputed the payment and the provider took the
# money back; then the provider reversed that (the merchant won).
DISPUTED = "disputed"
DISPUTE_WON = "dispute_won"

# Scenarios about webhooks answer "processing" at once, so only the webhook (or polling)
# can carry the result.
_WEBHOOK_ONLY = {WEBHOOK_DELAYED, WEBHOOK_TWICE, OUT_OF_ORDER, BAD_SIGNATURE}


def scenario_for(amount: Decimal, currency: str) -> str:
    minor = int(amount.scaleb(currency_exponent(currency)))
    return SCENARIOS.get(f"{minor % 100:02d}", SUCCESS)


def provider(code: str) -> PaymentProvider:
    return PaymentProvider.objects.get(code=code)


def api_key_matches(provider_: PaymentProvider, presented: str) -> bool:
    import hmac

    expected = provider_secret(provider_, "api_key")
    return bool(expected) and hmac.compare_digest(expected.encode(), presented.encode())


def create(
    *,
    provider_code: str,
    kind: str,
    prefix: str,
    merchant_reference: str,
    amount: Decimal,
    currency: str,
    notify_url: str,
    return_url: str = "",
    data: dict | None = None,
    status: str = PENDING,
) -> tuple[SandboxPayment, bool]:
    """Create the object, or return the one with this merchant reference (the provider's
    own idempotency: a retried request never charges twice)."""
    return SandboxPayment.objects.get_or_create(
        provider_code=provider_code,
        kind=kind,
        merchant_reference=merchant_reference,
        defaults={
            "sandbox_id": f"{prefix}_{secrets.token_hex(8)}",
            "amount": amount,
            "currency": currency,
            "status": status,
            "scenario": scenario_for(amount, currency),
            "notify_url": notify_url,
            "return_url": return_url,
            "data": data or {},
        },
    )


def settle(payment: SandboxPayment, outcome: str, *, amount_paid: Decimal | None = None, **data):
    """Move the object to `outcome` and send its webhooks as its scenario says.

    Webhooks leave through Celery after commit, like a real provider's delivery queue."""
    payment.status = outcome
    if outcome == PAID:
        payment.amount_paid = payment.amount if amount_paid is None else amount_paid
    payment.data = {**payment.data, **data}
    payment.save()
    schedule_webhooks(payment, outcome)


def schedule_webhooks(payment: SandboxPayment, outcome: str) -> None:
    from .tasks import send_webhook

    scenario = payment.scenario
    sends: list[tuple[str, float, bool]] = []
    if scenario == TIMEOUT:
        sends = []  # the answer timed out and the webhook got lost: only polling finds it
    elif scenario == WEBHOOK_DELAYED:
        sends = [(outcome, settings.PAYMENTS_SANDBOX_WEBHOOK_DELAY_SECONDS, True)]
    elif scenario == WEBHOOK_TWICE:
        sends = [(outcome, 0, True), (outcome, 0.5, True)]
    elif scenario == OUT_OF_ORDER:
        # The final status overtakes the earlier "pending" one.
        sends = [(outcome, 0, True), (PENDING, 1.0, True)]
    elif scenario == BAD_SIGNATURE:
        sends = [(outcome, 0, False)]
    elif scenario == CHARGEBACK and outcome == PAID:
        sends = [(outcome, 0, True), (DISPUTED, 1.0, True)]
    elif scenario == CHARGEBACK_FIRST and outcome == PAID:
        # The dispute overtakes the success: payments must hold it until the credit.
        sends = [(DISPUTED, 0, True), (outcome, 1.0, True)]
    else:
        sends = [(outcome, 0, True)]
    pk = payment.pk
    for status, delay, signed_right in sends:
        transaction.on_commit(
            lambda status=status, delay=delay, signed_right=signed_right: send_webhook.apply_async(
                (pk, status, signed_right), countdown=delay
            )
        )


def outcome_for_scenario(payment: SandboxPayment) -> str | None:
    """The immediate outcome of an object whose scenario needs no hosted page."""
    return {
        SOFT_DECLINE: DECLINED_SOFT,
        HARD_DECLINE: DECLINED_HARD,
        SUCCESS: None,
    }.get(payment.scenario, PAID)


def answer_outcome(payment: SandboxPayment) -> str:
    """What the synchronous API answer shows (polling always shows the real status)."""
    if payment.scenario in _WEBHOOK_ONLY and payment.status != PENDING:
        return PROCESSING
    return payment.status


def stall_if_timeout(payment: SandboxPayment) -> None:
    """The timeout scenario answers later than the adapter waits."""
    if payment.scenario == TIMEOUT:
        time.sleep(settings.PAYMENTS_SANDBOX_TIMEOUT_SLEEP_SECONDS)


# --- shared by every protocol's views -----------------------------------------------------


def base_url(request, protocol: str, code: str) -> str:
    """The provider's API base as the connector sees it (`PaymentProvider.api_base_url`)."""
    return request.build_absolute_uri(f"/api/v1/sandbox/{protocol}/{code}/")


def positive_decimal(value) -> Decimal | None:
    """A positive, finite decimal from a request field, else None."""
    from decimal import InvalidOperation

    try:
        amount = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return None
    return amount if amount.is_finite() and amount > 0 else None


def known_currency(code) -> bool:
    from wallets.models import Currency

    return isinstance(code, str) and Currency.objects.filter(code=code).exists()


def start(
    *,
    code: str,
    kind: str,
    prefix: str,
    reference: str,
    amount: Decimal,
    currency: str,
    notify_url: str,
    return_url: str = "",
    data: dict | None = None,
    hosted: bool = False,
) -> SandboxPayment:
    """Create (or find, for a retried request) the object and play its scenario. Returns the
    object; a `hosted` payment in the plain success scenario waits for its hosted page."""
    payment, created = create(
        provider_code=code,
        kind=kind,
        prefix=prefix,
        merchant_reference=reference,
        amount=amount,
        currency=currency,
        notify_url=notify_url,
        return_url=return_url,
        data=data,
    )
    if created:
        outcome = outcome_for_scenario(payment)
        if outcome is None and not hosted:
            outcome = PAID
        if outcome is not None:
            settle(payment, outcome)
        stall_if_timeout(payment)
    return payment


def hosted_page(request, payment, *, title, description, buttons, asks_payer=True):
    from django.shortcuts import render

    return render(
        request,
        "payments/sandbox/hosted_page.html",
        {
            "payment": payment,
            "title": title,
            "description": description,
            "buttons": buttons,
            # A crypto invoice only knows the address paid to, never the payer's.
            "asks_payer": asks_payer,
        },
    )


def finish_page(payment, outcome, request):
    """The player pressed a button on a hosted page: settle (once) and go back."""
    from django.http import HttpResponseRedirect

    if payment.status == PENDING:
        # The card number, wallet email or IBAN the player paid with, when the form has one.
        payer = request.POST.get("payer", "").strip()
        settle(payment, outcome, **({"payer": payer[:200]} if payer else {}))
    return HttpResponseRedirect(payment.return_url or "/")


def payer_of(payment: SandboxPayment, outcome: str) -> str:
    """Who paid: what the player typed on the hosted page (`payer`), else the merchant's
    customer reference, so one test player paying twice pays from the same instrument.
    Unknown while the payment waits for the player (they choose it on the hosted page)."""
    if payment.kind != SandboxPayment.Kind.PAYMENT or outcome == PENDING:
        return ""
    return str(payment.data.get("payer") or payment.data.get("customer") or "")


def digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def sandbox_iban(source: str) -> str:
    """A German IBAN derived from `source` that passes every check a real one must: mod-97
    check digits and the bank's national account-number checksum (searched for: the first
    account number from `source`'s digest on that passes)."""
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    start = int(digest(source), 16) % 10**10
    for step in range(10_000):
        candidate = IBAN.generate(
            "DE", bank_code="37040044", account_code=f"{(start + step) % 10**10:010d}"
        )
        try:
            return str(IBAN(str(candidate), validate_bban=True).compact)
        except SchwiftyException:
            continue
    raise AssertionError(f"no valid account number for {source!r}")  # pragma: no cover


# Signs the bad-signature scenario: anything but the provider's real secret.
WRONG_SECRET = "not-the-shared-secret"  # noqa: S105
