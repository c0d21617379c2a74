import csv
import io
from decimal import Decimal

import pytest
from django.utils import timezone

from reconciliation import services
from reconciliation.models import ReconciliationRun, SettlementImport
from reconciliation.services.sandbox import build_settlement_file, produce_sandbox_settlement
from tests.reconciliation import factories as f
from wallets import selectors
from wallets.models import Account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stub_providers")]
CODE = "sandbox-card"


def test_the_sandbox_settlement_file_reconciles_the_day_to_zero_in_transit():
    provider = f.ProviderFactory(
        code=CODE,
        api_base_url=f"http://127.0.0.1:8000/api/v1/sandbox/{CODE}/",
        fee_percent=Decimal("1.5"),
        fee_fixed=Decimal("0.10"),
    )
    first = f.deposit(provider, "100.00")
    second = f.deposit(provider, "40.00")
    f.deposit(provider, "25.00", succeed=False)  # never settled, never in the file
    f.withdrawal(provider, "30.00", player=first.player)
    f.refund(second, "5.00", actor=f.StaffUserFactory())
    today = timezone.now().date()

    rows = list(
        csv.DictReader(io.StringIO(build_settlement_file(provider_code=CODE, day=today).decode()))
    )
    assert sorted((r["record_type"], r["gross"], r["fee"], r["net"]) for r in rows) == sorted(
        [
            ("payment", "100.00", "1.60", "98.40"),
            ("payment", "40.00", "0.70", "39.30"),
            ("refund", "-5.00", "0.00", "-5.00"),
            ("player_payout", "-30.00", "0.00", "-30.00"),
            ("merchant_payout", "-102.70", "0.00", "-102.70"),
        ]
    )

    report, created = produce_sandbox_settlement(provider_code=CODE, day=today)
    assert created
    services.load_report(settlement_import=report)
    match = services.match_settlements(
        run=services.start_run(kind=ReconciliationRun.Kind.MATCH, provider_code=CODE)
    )
    assert (match.summary["matched"], match.summary["line_breaks"]) == (5, 0)
    services.settle(run=services.start_run(kind=ReconciliationRun.Kind.SETTLE, provider_code=CODE))

    clearing = Account.objects.get(kind=Account.Kind.PROVIDER_CLEARING, system_code=CODE)
    assert selectors.account_balance(clearing) == Decimal("0")
    assert selectors.ledger_problems() == []
    assert services.run_integrity_check().is_clean
    _, again = produce_sandbox_settlement(provider_code=CODE, day=today)
    assert not again
    assert SettlementImport.objects.count() == 1
