"""`adapter_for(provider)` returns the adapter that speaks that provider's API."""

from .base import PaymentAdapter
from .card import CardAdapter
from .crypto import CryptoAdapter
from .ewallet import EwalletAdapter
from .open_banking import OpenBankingAdapter

ADAPTERS: dict[str, type[PaymentAdapter]] = {
    a.kind: a for a in (CardAdapter, EwalletAdapter, OpenBankingAdapter, CryptoAdapter)
}


def adapter_for(provider) -> PaymentAdapter:
    return ADAPTERS[provider.kind](provider)
