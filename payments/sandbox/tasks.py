"""The sandbox's outgoing webhook queue."""

import logging

import httpx
from celery import shared_task

from payments.models import PaymentProvider

from .models import SandboxPayment
from .protocols import protocol_module

log = logging.getLogger(__name__)


@shared_task(acks_late=True, autoretry_for=(httpx.TransportError,), retry_backoff=1, max_retries=5)
def send_webhook(sandbox_payment_id: int, outcome: str, signed_right: bool = True) -> list[int]:
    payment = SandboxPayment.objects.get(pk=sandbox_payment_id)
    provider = PaymentProvider.objects.get(code=payment.provider_code)
    deliveries = protocol_module(provider.protocol).webhooks(
        payment, outcome, provider=provider, signed_right=signed_right
    )
    codes = []
    for body, headers in deliveries:
        response = httpx.post(payment.notify_url, content=body, headers=headers, timeout=10)
        log.info("sandbox webhook %s %s → %s", payment.sandbox_id, outcome, response.status_code)
        codes.append(response.status_code)
    return codes
