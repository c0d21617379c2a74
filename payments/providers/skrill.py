"""TODO(connector): the skrill protocol. Being written; see docs/payments.md."""

from .base import PaymentAdapter


class SkrillConnector(PaymentAdapter):
    protocol = "skrill"
