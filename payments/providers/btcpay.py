"""TODO(connector): the btcpay protocol. Being written; see docs/payments.md."""

from .base import PaymentAdapter


class BTCPayConnector(PaymentAdapter):
    protocol = "btcpay"
