"""Provider setup for the demo and the tests."""

import secrets

from ..models import PaymentMethod, PaymentProvider

SANDBOX_PROVIDERS = [
    # code, name, kind, base path, methods (code, name, currencies)
    (
        "sandbox-card",
        "Sandbox Card Acquirer",
        "card",
        "",
        [("card", "Card", ["EUR", "USD", "GBP", "JPY"])],
    ),
    (
        "sandbox-wallet",
        "Sandbox E-wallet",
        "ewallet",
        "",
        [("ewallet", "E-wallet", ["EUR", "USD", "GBP"])],
    ),
    (
        "sandbox-bank",
        "Sandbox Open Banking",
        "open_banking",
        "ob/",
        [("bank_transfer", "Pay by bank", ["EUR", "GBP"])],
    ),
    (
        "sandbox-crypto",
        "Sandbox Crypto Processor",
        "crypto",
        "",
        [("btc", "Bitcoin", ["BTC"]), ("eth", "Ether", ["ETH"]), ("usdt", "Tether", ["USDT"])],
    ),
]


def ensure_sandbox_providers(*, base_url: str) -> list[PaymentProvider]:
    """Create or re-point the four sandbox providers at `base_url` (this server). Their
    secrets are random per installation, never from the repository."""
    made = []
    for code, name, kind, sub_path, methods in SANDBOX_PROVIDERS:
        provider, _ = PaymentProvider.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "kind": kind,
                "merchant_id": f"merchant-{code}",
                "api_key": secrets.token_urlsafe(24),
                "webhook_secret": secrets.token_urlsafe(24),
                "api_base_url": "http://invalid/",
            },
        )
        provider.api_base_url = f"{base_url.rstrip('/')}/api/v1/sandbox/{code}/{sub_path}"
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
