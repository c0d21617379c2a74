"""The sandbox's outgoing webhook queue."""

import logging

import httpx
from celery import shared_task

from payments.models import PaymentProvider
from payments.providers.base import provider_secret

from .dialects import DIALECTS, WRONG_SECRET
from .models import SandboxPayment

log = logging.getLogger(__name__)


@shared_task(acks_late=True, autoretry_for=(httpx.TransportError,), retry_backoff=1, max_retries=5)
def send_webhook(sandbox_payment_id: int, outcome: str, signed_right: bool = True) -> int:
    payment = SandboxPayment.objects.get(pk=sandbox_payment_id)
    provider = PaymentProvider.objects.get(code=payment.provider_code)
    secret = provider_secret(provider, "webhook_secret") if signed_right else WRONG_SECRET
    dialect = DIALECTS[provider.kind]
    if provider.kind == "ewallet":
        body, headers = dialect.webhook(payment, outcome, secret, provider.merchant_id)
    else:
        body, headers = dialect.webhook(payment, outcome, secret)
    response = httpx.post(payment.notify_url, content=body, headers=headers, timeout=10)
    log.info("sandbox webhook %s %s → %s", payment.sandbox_id, outcome, response.status_code)
    return response.status_code
