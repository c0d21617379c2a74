from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from reconciliation.models import Break, ReconciliationRun, SettlementImport, SettlementLine
from tests.reconciliation import factories as f
from tests.reconciliation.helpers import adyen_time, load, match
from tests.reconciliation.reports import ADYEN_COLUMNS, SANDBOX_COLUMNS, adyen_row, write_csv
from tests.reconciliation.test_matching import PROVIDER, import_rows, row, run_matching

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stub_providers")]


def staff_client(*codenames):
    user = f.StaffUserFactory()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = APIClient()
    client.force_authenticate(type(user).objects.get(pk=user.pk))
    return client


def upload(client, content, name="day.csv", layout=SettlementImport.Layout.SANDBOX):
    return client.post(
        "/api/v1/reconciliation/reports",
        {
            "layout": layout,
            "provider_code": PROVIDER,
            "file": SimpleUploadedFile(name, content, content_type="text/csv"),
        },
        format="multipart",
    )


@pytest.mark.usefixtures("eager_tasks")
def test_upload_loads_the_report_and_the_same_file_again_is_a_no_op(
    django_capture_on_commit_callbacks,
):
    f.ProviderFactory(code=PROVIDER)
    client = staff_client("add_settlementimport", "view_settlementimport")
    content = write_csv(SANDBOX_COLUMNS, [row("payment", "psp-1", "10.00")])
    with django_capture_on_commit_callbacks(execute=True):
        created = upload(client, content)
    assert created.status_code == 201
    detail = client.get(f"/api/v1/reconciliation/reports/{created.json()['id']}").json()
    assert (detail["status"], detail["rows_processed"], detail["rows_total"]) == ("loaded", 1, 1)

    again = upload(client, content, name="copy.csv")
    assert again.status_code == 200
    assert again.json()["id"] == created.json()["id"]
    assert SettlementLine.objects.count() == 1


def test_a_bad_upload_is_refused_with_the_error_shape_and_nothing_stored():
    client = staff_client("add_settlementimport")
    response = upload(client, b"x", layout="excel")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert SettlementImport.objects.count() == 0


def test_staff_without_the_permission_and_anonymous_callers_are_refused():
    content = write_csv(SANDBOX_COLUMNS, [row("payment", "psp-1", "10.00")])
    assert upload(staff_client("view_break"), content).status_code == 403
    assert upload(APIClient(), content).status_code == 401
    assert SettlementImport.objects.count() == 0


def test_breaks_are_listed_and_filtered_and_runs_are_queued():
    provider = f.ProviderFactory(code=PROVIDER)
    short = f.deposit(provider, "100.00")
    import_rows([row("payment", short.provider_reference, "90.00")])
    run_matching()
    client = staff_client("view_break", "add_reconciliationrun", "view_reconciliationrun")

    listed = client.get("/api/v1/reconciliation/breaks", {"break_type": "amount_mismatch"})
    (brk,) = listed.json()["results"]
    assert (brk["id"], brk["difference"], brk["age"]) == (
        Break.objects.get().pk,
        "-10.00",
        "0-1 days",
    )
    assert client.get("/api/v1/reconciliation/breaks", {"status": "resolved"}).json()["count"] == 0

    started = client.post(
        "/api/v1/reconciliation/runs", {"kind": "settle", "provider_code": PROVIDER}, format="json"
    )
    assert started.status_code == 202
    run = ReconciliationRun.objects.get(pk=started.json()["id"])
    assert (run.kind, run.status) == ("settle", "queued")


def test_the_daily_report_downloads_as_csv():
    provider = f.ProviderFactory(code=PROVIDER)
    ok = f.deposit(provider, "10.00")
    import_rows([row("payment", ok.provider_reference, "10.00", fee="0.20")])
    run_matching()
    response = staff_client("view_settlementline").get("/api/v1/reconciliation/report.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    header, line = response.content.decode().strip().splitlines()
    assert header.startswith("day,provider,currency,lines,matched,matched_gross")
    assert f",{PROVIDER},EUR,1,1,10.00," in line


def test_paging_through_the_breaks_returns_every_break_once():
    # One run finds 140 unknown payments in an Adyen report: 140 breaks with one detection
    # time, listed 50 to a page.
    f.ProviderFactory(code=PROVIDER)
    booked = timezone.now() - timedelta(days=3)
    content = write_csv(
        ADYEN_COLUMNS,
        [
            adyen_row(
                "Settled",
                psp=f"88150000{n:08d}",
                gross_credit=f"{n + 1}.00",
                net_credit=f"{n + 1}.00",
                created=adyen_time(booked),
            )
            for n in range(140)
        ],
    )
    load(SettlementImport.Layout.ADYEN, PROVIDER, content)
    match(PROVIDER)
    assert Break.objects.values("detected_at").distinct().count() == 1
    client = staff_client("view_break")

    seen, url = [], "/api/v1/reconciliation/breaks"
    while url:
        page = client.get(url).json()
        assert page["count"] == 140
        seen += [row["id"] for row in page["results"]]
        url = page["next"]

    assert len(seen) == 140
    assert sorted(seen, reverse=True) == seen
    assert set(seen) == set(Break.objects.values_list("pk", flat=True))
