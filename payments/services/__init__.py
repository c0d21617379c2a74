"""Every write of the payments app.

Shape of each action: lock the payment row, ask its state machine for the move, move the
money through `wallets.services` and record a `PaymentTransition`, all in one transaction.
Celery work is enqueued with `transaction.on_commit(robust=True)`: a broker outage after the
commit is logged, not raised, because the sweeper, the janitor and the notification retry job
find whatever was not enqueued. Calls to providers happen outside any transaction (a slow
provider must not hold row locks); their answers are applied afterwards under the lock like
any webhook, so an answer that arrives after a webhook never moves a payment backwards.

One module per subject; callers import from here.
"""

from .casino import due_notification_ids, resend_notification
from .chargebacks import apply_held_chargebacks, record_chargeback, reverse_chargeback
from .common import new_reference, webhook_url
from .deposits import (
    accept_held_deposit,
    apply_deposit_result,
    create_deposit,
    expire_deposit,
    submit_payment_details,
)
from .inbox import (
    WebhookRefused,
    process_webhook,
    receive_webhook,
    record_webhook_failure,
    store_webhook,
    unprocessed_webhook_ids,
    webhook_ack,
)
from .janitor import poll_stuck_payments
from .refunds import apply_refund_result, refund_deposit
from .setup import SANDBOX_PROVIDERS, ensure_sandbox_providers
from .withdrawals import (
    add_payout_instrument,
    apply_withdrawal_result,
    approve_withdrawal,
    cancel_withdrawal,
    deactivate_payout_instrument,
    reject_withdrawal,
    request_withdrawal,
    start_payout,
)

__all__ = [
    "SANDBOX_PROVIDERS",
    "WebhookRefused",
    "accept_held_deposit",
    "add_payout_instrument",
    "apply_deposit_result",
    "apply_held_chargebacks",
    "apply_refund_result",
    "apply_withdrawal_result",
    "approve_withdrawal",
    "cancel_withdrawal",
    "create_deposit",
    "deactivate_payout_instrument",
    "due_notification_ids",
    "ensure_sandbox_providers",
    "expire_deposit",
    "new_reference",
    "poll_stuck_payments",
    "process_webhook",
    "receive_webhook",
    "record_chargeback",
    "record_webhook_failure",
    "refund_deposit",
    "reject_withdrawal",
    "request_withdrawal",
    "resend_notification",
    "reverse_chargeback",
    "start_payout",
    "store_webhook",
    "submit_payment_details",
    "unprocessed_webhook_ids",
    "webhook_ack",
    "webhook_url",
]
