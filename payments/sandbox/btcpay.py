"""TODO(sandbox): the btcpay protocol's simulated server. Being written."""

urlpatterns = []


def credentials() -> dict:
    raise NotImplementedError


def webhooks(payment, outcome, *, provider, signed_right):
    raise NotImplementedError
