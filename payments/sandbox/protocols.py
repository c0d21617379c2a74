"""The sandbox's protocols: one module per real provider protocol, each exporting

- `urlpatterns`: its API and hosted pages, mounted at `/api/v1/sandbox/<protocol>/<code>/`
  (views take the provider `code`);
- `credentials() -> dict`: fresh `api_key`, `webhook_secret`, `merchant_id` and `options` in
  the formats the real provider issues (an Adyen HMAC key is hex, a Stripe secret `whsec_…`);
- `webhooks(payment, outcome, *, provider, signed_right) -> list[(body, headers)]`: the
  deliveries the real provider would send for `payment` reaching `outcome` (a `core` outcome),
  signed with the provider's webhook secret, or with a wrong one when not `signed_right`.
"""

from importlib import import_module
from types import ModuleType

PROTOCOL_MODULES = {
    "stripe": "payments.sandbox.stripe",
    "adyen": "payments.sandbox.adyen",
    "skrill": "payments.sandbox.skrill",
    "btcpay": "payments.sandbox.btcpay",
    "berlin_group": "payments.sandbox.berlin_group",
}


def protocol_module(protocol: str) -> ModuleType:
    return import_module(PROTOCOL_MODULES[protocol])
