"""TODO(connector): the adyen protocol. Being written; see docs/payments.md."""

from .base import PaymentAdapter


class AdyenConnector(PaymentAdapter):
    protocol = "adyen"
