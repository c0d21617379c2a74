"""Shared steps of the regression tests: receive and load a real-layout report, run matching
and settlement for one provider, read a system account's balance."""

from datetime import UTC, datetime
from decimal import Decimal

from reconciliation import services
from reconciliation.models import ReconciliationRun
from wallets import selectors
from wallets.models import Account


def load(layout: str, provider_code: str, content: bytes, name: str = "report.csv"):
    report, _ = services.receive_report(
        layout=layout, provider_code=provider_code, file_name=name, content=content
    )
    return services.load_report(settlement_import=report)


def match(provider_code: str, as_of: datetime | None = None) -> ReconciliationRun:
    run = services.start_run(kind=ReconciliationRun.Kind.MATCH, provider_code=provider_code)
    return services.match_settlements(run=run, as_of=as_of)


def settle(provider_code: str) -> ReconciliationRun:
    run = services.start_run(kind=ReconciliationRun.Kind.SETTLE, provider_code=provider_code)
    return services.settle(run=run)


def balance(kind: str, code: str, currency: str = "EUR") -> Decimal:
    account = Account.objects.filter(
        kind=kind, system_code=code, currency_id=currency, owner=None
    ).first()
    return selectors.account_balance(account) if account else Decimal(0)


def adyen_time(moment: datetime) -> str:
    """A time as Adyen's Creation Date column writes it (in the report's TimeZone, here UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


stripe_time = adyen_time
