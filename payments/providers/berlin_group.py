"""TODO(connector): the berlin_group protocol. Being written; see docs/payments.md."""

from .base import PaymentAdapter


class BerlinGroupConnector(PaymentAdapter):
    protocol = "berlin_group"
