"""TODO(connector): the stripe protocol. Being written; see docs/payments.md."""

from .base import PaymentAdapter


class StripeConnector(PaymentAdapter):
    protocol = "stripe"
