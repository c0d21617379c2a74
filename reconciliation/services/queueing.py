"""Entry points that hand long work to Celery: upload, matching and settlement runs, the
watched folder and the sandbox's daily files. Tasks are enqueued on commit, so a task never
looks for a row its caller has not committed."""

import shutil
from datetime import date, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..layouts import LAYOUTS
from ..models import ReconciliationRun, SettlementImport
from .importing import receive_report
from .matching import start_run
from .sandbox import produce_sandbox_settlement, sandbox_provider_codes


def _on_commit(task, *args) -> None:
    transaction.on_commit(lambda: task.delay(*args))


def upload_report(
    *, layout: str, provider_code: str, file_name: str, content, uploaded_by=None
) -> tuple[SettlementImport, bool]:
    """Receive a report and queue its loading; a report already held is returned as is."""
    from ..tasks import load_settlement_report

    with transaction.atomic():
        report, created = receive_report(
            layout=layout,
            provider_code=provider_code,
            file_name=file_name,
            content=content,
            uploaded_by=uploaded_by,
        )
        if created:
            _on_commit(load_settlement_report, report.pk)
    return report, created


def queue_match(*, provider_code: str = "", triggered_by=None) -> ReconciliationRun:
    from ..tasks import match_settlements

    with transaction.atomic():
        run = start_run(
            kind=ReconciliationRun.Kind.MATCH,
            provider_code=provider_code,
            triggered_by=triggered_by,
        )
        _on_commit(match_settlements, run.pk)
    return run


def queue_settle(*, provider_code: str = "", triggered_by=None) -> ReconciliationRun:
    from ..tasks import settle_lines

    with transaction.atomic():
        run = start_run(
            kind=ReconciliationRun.Kind.SETTLE,
            provider_code=provider_code,
            triggered_by=triggered_by,
        )
        _on_commit(settle_lines, run.pk)
    return run


def scan_inbox(*, inbox: Path | None = None) -> list[SettlementImport]:
    """Receive every `<inbox>/<layout>/<provider>/*.csv` and move it to `processed/` beside it.
    A file in a folder that names no layout is moved to `unknown/` and left for a person."""
    inbox = Path(inbox or settings.RECONCILIATION_INBOX_DIR)
    received = []
    for path in sorted(inbox.glob("*/*/*.csv")):
        layout, provider_code = path.parent.parent.name, path.parent.name
        target = "processed" if layout in LAYOUTS else "unknown"
        if target == "processed":
            with path.open("rb") as content:
                report, _ = upload_report(
                    layout=layout, provider_code=provider_code, file_name=path.name, content=content
                )
            received.append(report)
        done = path.parent / target
        done.mkdir(exist_ok=True)
        shutil.move(str(path), done / path.name)
    return received


def produce_sandbox_settlements(*, day: date | None = None) -> list[SettlementImport]:
    """Each sandbox provider's file for `day` (yesterday by default), queued for loading."""
    from ..tasks import load_settlement_report

    day = day or (timezone.now() - timedelta(days=1)).date()
    produced = []
    for code in sandbox_provider_codes():
        with transaction.atomic():
            report, created = produce_sandbox_settlement(provider_code=code, day=day)
            if created:
                _on_commit(load_settlement_report, report.pk)
        produced.append(report)
    return produced
