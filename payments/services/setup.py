"""Provider setup for the demo and the tests."""

from ..models import PaymentMethod, PaymentProvider
from ..sandbox.protocols import protocol_module

SANDBOX_PROVIDERS = [
    # code, name, kind, protocol, methods (code, name, currencies)
    (
        "sandbox-card",
        "Sandbox Stripe",
        "card",
        "stripe",
        [("card", "Card", ["EUR", "USD", "GBP", "JPY"])],
    ),
    (
        "sandbox-adyen",
        "Sandbox Adyen",
        "card",
        "adyen",
        [("card_adyen", "Card (Adyen)", ["EUR", "USD", "GBP", "JPY"])],
    ),
    (
        "sandbox-wallet",
        "Sandbox Skrill",
        "ewallet",
        "skrill",
        [("ewallet", "Skrill", ["EUR", "USD", "GBP"])],
    ),
    (
        "sandbox-bank",
        "Sandbox Bank (NextGenPSD2)",
        "open_banking",
        "berlin_group",
        [("bank_transfer", "Pay by bank", ["EUR"])],
    ),
    (
        "sandbox-crypto",
        "Sandbox BTCPay Server",
        "crypto",
        "btcpay",
        [("btc", "Bitcoin", ["BTC"]), ("eth", "Ether", ["ETH"]), ("usdt", "Tether", ["USDT"])],
    ),
]


def ensure_sandbox_providers(*, base_url: str) -> list[PaymentProvider]:
    """Create or re-point the sandbox providers at `base_url` (this server). Their secrets
    are random per installation, in each provider's own format, never from the repository."""
    made = []
    for code, name, kind, protocol, methods in SANDBOX_PROVIDERS:
        provider = PaymentProvider.objects.filter(code=code).first()
        if provider is None or provider.protocol != protocol:
            credentials = protocol_module(protocol).credentials()
            provider, _ = PaymentProvider.objects.update_or_create(
                code=code,
                defaults={
                    "name": name,
                    "kind": kind,
                    "protocol": protocol,
                    "api_key": credentials["api_key"],
                    "webhook_secret": credentials["webhook_secret"],
                    "merchant_id": credentials["merchant_id"],
                    "options": credentials.get("options", {}),
                    "api_base_url": "http://invalid/",
                },
            )
        provider.api_base_url = f"{base_url.rstrip('/')}/api/v1/sandbox/{protocol}/{code}/"
        provider.save(update_fields=["api_base_url"])
        all_currencies = set()
        for method_code, method_name, currencies in methods:
            method, _ = PaymentMethod.objects.get_or_create(
                code=method_code, defaults={"name": method_name, "provider": provider}
            )
            method.currencies.set(currencies)
            all_currencies.update(currencies)
        provider.currencies.set(sorted(all_currencies))
        made.append(provider)
    return made
