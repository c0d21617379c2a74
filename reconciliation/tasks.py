"""Celery tasks: thin, idempotent wrappers that load their row and call one service.
Progress (rows processed / total) is written by the services onto the import or run row."""

from celery import shared_task
from django.conf import settings

from . import services
from .errors import MalformedReport, ReportNotLoadable
from .models import ReconciliationRun, SettlementImport
from .services import queueing

_RUNNABLE = (ReconciliationRun.Status.QUEUED, ReconciliationRun.Status.RUNNING)


@shared_task(acks_late=True)
def load_settlement_report(import_id: int) -> str:
    report = SettlementImport.objects.get(pk=import_id)
    try:
        report = services.load_report(settlement_import=report)
    except (MalformedReport, ReportNotLoadable) as refused:
        # A refused file is an outcome, stored on the import for the admin; not a retry.
        return refused.code
    if settings.RECONCILIATION_MATCH_AFTER_IMPORT:
        queueing.queue_match(provider_code=report.provider_code)
    return report.status


@shared_task(acks_late=True)
def match_settlements(run_id: int) -> dict:
    run = ReconciliationRun.objects.get(pk=run_id)
    # A redelivered task finds its run done and does nothing; one that died mid-run runs
    # again (the run is one transaction, so nothing of the first attempt remains).
    if run.status not in _RUNNABLE:
        return run.summary
    return services.match_settlements(run=run).summary


@shared_task(acks_late=True)
def settle_lines(run_id: int) -> dict:
    run = ReconciliationRun.objects.get(pk=run_id)
    if run.status not in _RUNNABLE:
        return run.summary
    return services.settle(run=run).summary


@shared_task(acks_late=True)
def check_ledger_integrity() -> bool:
    return services.run_integrity_check().is_clean


@shared_task(acks_late=True)
def scan_settlement_inbox() -> int:
    return len(queueing.scan_inbox())


@shared_task(acks_late=True)
def produce_sandbox_settlements() -> int:
    return len(queueing.produce_sandbox_settlements())
