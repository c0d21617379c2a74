from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from reconciliation import services
from reconciliation.models import (
    Break,
    IntegrityAlert,
    ReconciliationRun,
    SettlementImport,
    SettlementLine,
)
from tests.reconciliation import factories as f
from tests.reconciliation.reports import SANDBOX_COLUMNS, write_csv
from tests.reconciliation.test_matching import PROVIDER, import_rows, row, run_matching

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stub_providers")]


@pytest.fixture
def finance(client):
    user = f.StaffUserFactory(is_superuser=True)
    client.force_login(user)
    return user


@pytest.mark.usefixtures("eager_tasks")
def test_uploading_a_report_in_the_admin_loads_and_matches_it(
    client, finance, django_capture_on_commit_callbacks
):
    f.ProviderFactory(code=PROVIDER)
    content = write_csv(SANDBOX_COLUMNS, [row("payment", "psp-1", "10.00")])
    upload = reverse("admin:reconciliation_settlementimport_upload")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            upload,
            {
                "layout": SettlementImport.Layout.SANDBOX,
                "provider_code": PROVIDER,
                "file": _file("day.csv", content),
            },
        )
    assert response.status_code == 302
    report = SettlementImport.objects.get()
    assert (report.status, report.lines_loaded, report.uploaded_by) == ("loaded", 1, finance)
    listing = client.get(reverse("admin:reconciliation_settlementimport_changelist"))
    assert b"1 / 1 (100%)" in listing.content
    # Loading queued a matching run of the provider, which ran too.
    run = ReconciliationRun.objects.get()
    assert (run.kind, run.provider_code, run.status) == ("match", PROVIDER, "done")
    assert (
        client.get(reverse("admin:reconciliation_reconciliationrun_changelist")).status_code == 200
    )

    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(
            upload,
            {
                "layout": SettlementImport.Layout.SANDBOX,
                "provider_code": PROVIDER,
                "file": _file("copy.csv", content),
            },
            follow=True,
        )
    assert b"was imported before" in again.content
    assert SettlementLine.objects.count() == 1


@pytest.mark.usefixtures("eager_tasks")
def test_a_refused_upload_shows_its_line_numbered_errors(
    client, finance, django_capture_on_commit_callbacks
):
    f.ProviderFactory(code=PROVIDER)
    bad = write_csv(SANDBOX_COLUMNS, [row("payment", "psp-1", "10.001")])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:reconciliation_settlementimport_upload"),
            {
                "layout": SettlementImport.Layout.SANDBOX,
                "provider_code": PROVIDER,
                "file": _file("bad.csv", bad),
            },
        )
    report = SettlementImport.objects.get()
    page = client.get(reverse("admin:reconciliation_settlementimport_change", args=[report.pk]))
    assert report.status == "rejected"
    assert b"line 2, gross: 10.001 has more decimals than EUR allows" in page.content
    assert SettlementLine.objects.count() == 0


def test_write_off_actions_in_the_admin_need_a_second_approver(client, finance):
    provider = f.ProviderFactory(code=PROVIDER)
    deposit = f.deposit(provider, "500.00")
    import_rows([row("payment", deposit.provider_reference, "300.00")])
    run_matching()
    brk = Break.objects.get()
    changelist = reverse("admin:reconciliation_break_changelist")
    client.post(
        changelist,
        {
            "action": "write_off",
            "_selected_action": [brk.pk],
            "apply": "1",
            "reason": "unrecoverable",
        },
    )
    brk.refresh_from_db()
    assert brk.status == Break.Status.AWAITING_APPROVAL
    response = client.post(
        changelist,
        {
            "action": "approve_write_off",
            "_selected_action": [brk.pk],
            "apply": "1",
            "reason": "self-approval",
        },
        follow=True,
    )
    assert b"cannot approve it" in response.content
    brk.refresh_from_db()
    assert brk.status == Break.Status.AWAITING_APPROVAL

    supervisor = f.StaffUserFactory()
    supervisor.user_permissions.add(
        *Permission.objects.filter(codename__in=["approve_write_off", "view_break", "change_break"])
    )
    client.force_login(supervisor)
    client.post(
        changelist,
        {"action": "approve_write_off", "_selected_action": [brk.pk], "apply": "1", "reason": "ok"},
    )
    brk.refresh_from_db()
    assert (brk.status, brk.closed_by) == (Break.Status.WRITTEN_OFF, supervisor)
    assert brk.entry.postings.get(account__kind="write_off").amount == Decimal("-200.00")


def test_daily_report_downloads_as_csv(client, finance):
    provider = f.ProviderFactory(code=PROVIDER)
    ok = f.deposit(provider, "10.00")
    short = f.deposit(provider, "20.00")
    import_rows(
        [
            row("payment", ok.provider_reference, "10.00", fee="0.20"),
            row("payment", short.provider_reference, "19.00", fee="0.10"),
        ]
    )
    run_matching()
    response = client.get(reverse("admin:reconciliation_daily_report"), {"format": "csv"})
    assert response["Content-Type"] == "text/csv"
    header, line = response.content.decode().strip().splitlines()
    values = dict(zip(header.split(","), line.split(","), strict=True))
    assert {
        k: values[k]
        for k in (
            "provider",
            "currency",
            "lines",
            "matched",
            "matched_gross",
            "unmatched",
            "amount_mismatch",
            "fees",
            "net",
        )
    } == {
        "provider": PROVIDER,
        "currency": "EUR",
        "lines": "2",
        "matched": "1",
        "matched_gross": "10.00",
        "unmatched": "1",
        "amount_mismatch": "1",
        "fees": "0.30",
        "net": "28.70",
    }
    page = client.get(reverse("admin:reconciliation_daily_report"))
    assert page.status_code == 200


def test_integrity_alerts_show_on_the_reconciliation_admin_page(client, finance):
    provider = f.ProviderFactory(code=PROVIDER)
    short = f.deposit(provider, "100.00")
    import_rows([row("payment", short.provider_reference, "90.00")])
    run_matching()
    services.run_integrity_check()
    page = client.get(reverse("admin:app_list", args=["reconciliation"]))
    assert b"Integrity alerts (1)" in page.content
    client.post(
        reverse("admin:reconciliation_integrityalert_changelist"),
        {"action": "acknowledge", "_selected_action": [IntegrityAlert.objects.get().pk]},
    )
    page = client.get(reverse("admin:app_list", args=["reconciliation"]))
    assert b"Integrity alerts (" not in page.content


def _file(name, content):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type="text/csv")
