"""`adapter_for(provider)` returns the connector that speaks that provider's protocol."""

from .adyen import AdyenConnector
from .base import PaymentAdapter
from .berlin_group import BerlinGroupConnector
from .btcpay import BTCPayConnector
from .skrill import SkrillConnector
from .stripe import StripeConnector

CONNECTORS: dict[str, type[PaymentAdapter]] = {
    c.protocol: c
    for c in (
        StripeConnector,
        AdyenConnector,
        SkrillConnector,
        BTCPayConnector,
        BerlinGroupConnector,
    )
}


def adapter_for(provider) -> PaymentAdapter:
    return CONNECTORS[provider.protocol](provider)
