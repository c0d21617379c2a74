import threading

import pytest
from django.db import connection

from reconciliation import services
from reconciliation.models import Break, LineMatch, ReconciliationRun, SettlementPosting
from tests.reconciliation import factories as f
from tests.reconciliation.test_matching import PROVIDER, import_rows, row
from wallets import selectors
from wallets.models import JournalEntry

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("stub_providers")]


def in_threads(target, count=2):
    errors = []
    barrier = threading.Barrier(count)

    def run():
        try:
            barrier.wait()
            target()
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_two_matching_runs_at_once_queue_and_leave_one_set_of_breaks():
    provider = f.ProviderFactory(code=PROVIDER)
    ok = f.deposit(provider, "10.00")
    short = f.deposit(provider, "100.00")
    import_rows(
        [
            row("payment", ok.provider_reference, "10.00", fee="0.10"),
            row("payment", short.provider_reference, "90.00"),
            row("merchant_payout", "PO-1", "-99.90"),
        ]
    )

    in_threads(
        lambda: services.match_settlements(
            run=services.start_run(kind=ReconciliationRun.Kind.MATCH, provider_code=PROVIDER)
        )
    )

    assert LineMatch.objects.count() == 3
    assert Break.objects.filter(status=Break.Status.OPEN).count() == 1
    assert ReconciliationRun.objects.filter(status="done").count() == 2


def test_two_settlement_runs_at_once_book_each_line_once():
    provider = f.ProviderFactory(code=PROVIDER)
    ok = f.deposit(provider, "10.00")
    import_rows(
        [
            row("payment", ok.provider_reference, "10.00", fee="0.10"),
            row("merchant_payout", "PO-1", "-9.90"),
        ]
    )
    services.match_settlements(
        run=services.start_run(kind=ReconciliationRun.Kind.MATCH, provider_code=PROVIDER)
    )

    in_threads(
        lambda: services.settle(
            run=services.start_run(kind=ReconciliationRun.Kind.SETTLE, provider_code=PROVIDER)
        ),
        count=4,
    )

    assert SettlementPosting.objects.count() == 2
    assert JournalEntry.objects.filter(kind__in=["provider_fee", "settlement_payout"]).count() == 2
    assert selectors.ledger_problems() == []
