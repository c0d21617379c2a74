from decimal import Decimal

import pytest

from reconciliation import services
from reconciliation.errors import MalformedReport
from reconciliation.models import ProviderPolicy, ReportFormat, SettlementImport, SettlementLine
from reconciliation.progress import Progress
from reconciliation.services import importing
from tests.reconciliation.reports import (
    ADYEN_COLUMNS,
    SANDBOX_COLUMNS,
    STRIPE_COLUMNS,
    adyen_row,
    sandbox_row,
    stripe_row,
    write_csv,
)

pytestmark = pytest.mark.django_db
Layout = SettlementImport.Layout
RT = SettlementLine.RecordType


def load(layout, content, provider="adyen", name="report.csv"):
    report, created = services.receive_report(
        layout=layout, provider_code=provider, file_name=name, content=content
    )
    assert created
    return services.load_report(settlement_import=report)


def normalized(line: SettlementLine):
    return (
        line.record_type,
        line.provider_reference,
        line.payment_reference,
        line.merchant_reference,
        line.gross,
        line.fee,
        line.net,
        line.currency,
        line.batch,
    )


ADYEN_ROWS = [
    adyen_row(
        "Settled",
        psp="8815000000000001",
        merchant_reference="DEP-1",
        gross_credit="100.00",
        net_credit="97.70",
        markup="1.50",
        scheme_fees="0.30",
        interchange="0.50",
    ),
    adyen_row(
        "Refunded",
        psp="8815000000000001",
        modification="8815000000000009",
        merchant_reference="DEP-1",
        gross_debit="20.00",
        net_debit="20.10",
        commission="0.10",
    ),
    adyen_row(
        "Chargeback",
        psp="8815000000000002",
        modification="CB-1",
        gross_debit="50.00",
        net_debit="50.00",
    ),
    adyen_row("Fee", psp="", modification="FEE-1", net_debit="2.00", currency=""),
    adyen_row("MerchantPayout", psp="", modification="PAYOUT-1", net_debit="25.60"),
]


def test_adyen_settlement_details_map_to_normalized_lines():
    rows = [{**r, "Gross Currency": r["Gross Currency"] or ""} for r in ADYEN_ROWS]
    rows[3]["Net Currency"] = "EUR"
    report = load(Layout.ADYEN, write_csv(ADYEN_COLUMNS, rows))

    assert report.status == SettlementImport.Status.LOADED
    assert (report.rows_total, report.lines_loaded, report.lines_already_known) == (5, 5, 0)
    lines = list(SettlementLine.objects.order_by("line_number"))
    assert [line.line_number for line in lines] == [2, 3, 4, 5, 6]
    assert [normalized(line) for line in lines] == [
        (
            RT.PAYMENT,
            "8815000000000001",
            "8815000000000001",
            "DEP-1",
            Decimal("100.00"),
            Decimal("2.30"),
            Decimal("97.70"),
            "EUR",
            "101",
        ),
        (
            RT.REFUND,
            "8815000000000009",
            "8815000000000001",
            "DEP-1",
            Decimal("-20.00"),
            Decimal("0.10"),
            Decimal("-20.10"),
            "EUR",
            "101",
        ),
        (
            RT.CHARGEBACK,
            "CB-1",
            "8815000000000002",
            "",
            Decimal("-50.00"),
            Decimal("0"),
            Decimal("-50.00"),
            "EUR",
            "101",
        ),
        (RT.FEE, "FEE-1", "", "", Decimal("0"), Decimal("2.00"), Decimal("-2.00"), "EUR", "101"),
        (
            RT.MERCHANT_PAYOUT,
            "PAYOUT-1",
            "",
            "",
            Decimal("-25.60"),
            Decimal("0"),
            Decimal("-25.60"),
            "EUR",
            "101",
        ),
    ]


def test_adyen_creation_date_is_read_in_the_reports_time_zone():
    row = adyen_row(
        "Settled",
        psp="P1",
        gross_credit="1.00",
        net_credit="1.00",
        created="2026-07-01 12:00:00",
        timezone="Europe/Amsterdam",
    )
    load(Layout.ADYEN, write_csv(ADYEN_COLUMNS, [row]))
    line = SettlementLine.objects.get()
    assert line.booked_at.isoformat() == "2026-07-01T10:00:00+00:00"


def test_reordered_and_extra_columns_bom_and_windows_line_endings_read_the_same():
    plain = write_csv(ADYEN_COLUMNS, ADYEN_ROWS[:3])
    shuffled_order = list(reversed(ADYEN_COLUMNS))
    awkward = write_csv(
        ADYEN_COLUMNS,
        ADYEN_ROWS[:3],
        bom=True,
        crlf=True,
        order=shuffled_order,
        extra_columns={"Acquirer": "AdyenNL", "Issuer Country": "MT"},
    )
    load(Layout.ADYEN, plain, provider="adyen-a", name="plain.csv")
    load(Layout.ADYEN, awkward, provider="adyen-b", name="awkward.csv")
    first = [normalized(x) for x in SettlementLine.objects.filter(provider_code="adyen-a")]
    second = [normalized(x) for x in SettlementLine.objects.filter(provider_code="adyen-b")]
    assert len(first) == 3
    assert first == second


def test_stripe_itemized_payout_reconciliation_maps_categories_and_signs():
    rows = [
        stripe_row(
            "charge",
            txn="txn_1",
            source="ch_1",
            payment_intent="pi_1",
            gross="100.00",
            fee="3.20",
            net="96.80",
            reference="DEP-9",
        ),
        stripe_row("refund", txn="txn_2", source="re_1", payment_intent="pi_1", gross="-10.00"),
        stripe_row(
            "dispute",
            txn="txn_3",
            source="dp_1",
            payment_intent="pi_2",
            gross="-30.00",
            fee="15.00",
            net="-45.00",
        ),
        stripe_row("fee", txn="txn_4", source="", gross="-1.00"),
        stripe_row("payout", txn="txn_5", source="po_1", gross="-40.80"),
        stripe_row("transfer", txn="txn_6", source="tr_1", gross="-1.00"),
    ]
    load(Layout.STRIPE, write_csv(STRIPE_COLUMNS, rows), provider="stripe")
    lines = list(SettlementLine.objects.order_by("line_number"))
    assert [normalized(line) for line in lines] == [
        (
            RT.PAYMENT,
            "pi_1",
            "pi_1",
            "DEP-9",
            Decimal("100.00"),
            Decimal("3.20"),
            Decimal("96.80"),
            "EUR",
            "po_1",
        ),
        (
            RT.REFUND,
            "re_1",
            "pi_1",
            "",
            Decimal("-10.00"),
            Decimal("0.00"),
            Decimal("-10.00"),
            "EUR",
            "po_1",
        ),
        (
            RT.CHARGEBACK,
            "dp_1",
            "pi_2",
            "",
            Decimal("-30.00"),
            Decimal("15.00"),
            Decimal("-45.00"),
            "EUR",
            "po_1",
        ),
        (RT.FEE, "txn_4", "", "", Decimal("0"), Decimal("1.00"), Decimal("-1.00"), "EUR", "po_1"),
        (
            RT.MERCHANT_PAYOUT,
            "po_1",
            "",
            "",
            Decimal("-40.80"),
            Decimal("0.00"),
            Decimal("-40.80"),
            "EUR",
            "po_1",
        ),
        (
            RT.OTHER,
            "tr_1",
            "",
            "",
            Decimal("-1.00"),
            Decimal("0.00"),
            Decimal("-1.00"),
            "EUR",
            "po_1",
        ),
    ]


def test_sandbox_settlement_file_loads_thousands_of_lines():
    rows = [
        sandbox_row(
            "payment",
            provider="sandbox-card",
            reference=f"SBX-{i:06d}",
            merchant_reference=f"DEP-{i}",
            gross=f"{i}.25",
            fee="0.25",
            net=f"{i}.00",
        )
        for i in range(1, 5001)
    ]
    report = load(Layout.SANDBOX, write_csv(SANDBOX_COLUMNS, rows), provider="sandbox-card")
    assert (report.rows_total, report.rows_processed, report.lines_loaded) == (5000, 5000, 5000)
    line = SettlementLine.objects.get(provider_reference="SBX-004321")
    assert (line.gross, line.fee, line.net, line.line_number) == (
        Decimal("4321.25"),
        Decimal("0.25"),
        Decimal("4321.00"),
        4322,
    )


def test_a_load_inside_a_callers_transaction_reports_no_progress_while_copying(monkeypatch):
    # Inside an outer transaction progress goes through the loading connection itself, which
    # is busy streaming the COPY: writing progress there would break the load.
    unthrottled = Progress.__init__
    monkeypatch.setattr(
        Progress, "__init__", lambda self, model, pk: unthrottled(self, model, pk, min_interval=0)
    )
    monkeypatch.setattr(importing, "_CHUNK", 512)
    rows = [
        sandbox_row("payment", provider="sbx", reference=f"R{i}", gross="1.00") for i in range(50)
    ]
    report = load(Layout.SANDBOX, write_csv(SANDBOX_COLUMNS, rows), provider="sbx")
    assert (report.rows_processed, report.lines_loaded) == (50, 50)


def test_the_same_file_twice_is_recognised_and_not_imported_again():
    content = write_csv(ADYEN_COLUMNS, ADYEN_ROWS[:2])
    first = load(Layout.ADYEN, content)
    again, created = services.receive_report(
        layout=Layout.ADYEN, provider_code="adyen", file_name="again.csv", content=content
    )
    assert not created
    assert again.pk == first.pk
    assert SettlementImport.objects.count() == 1
    assert SettlementLine.objects.count() == 2


def test_lines_resent_in_a_later_report_are_not_counted_twice():
    load(Layout.ADYEN, write_csv(ADYEN_COLUMNS, ADYEN_ROWS[:2]), name="monday.csv")
    # Tuesday's report repeats Monday's refund line, in another column order, and adds one.
    later = write_csv(ADYEN_COLUMNS, ADYEN_ROWS[1:3], order=list(reversed(ADYEN_COLUMNS)))
    report = load(Layout.ADYEN, later, name="tuesday.csv")
    assert (report.rows_total, report.lines_loaded, report.lines_already_known) == (2, 1, 1)
    assert SettlementLine.objects.count() == 3


def test_a_resent_line_is_recognised_whatever_the_number_format():
    row = adyen_row("Settled", psp="P9", gross_credit="10.5", net_credit="10.4", commission="0.1")
    load(Layout.ADYEN, write_csv(ADYEN_COLUMNS, [row]), name="monday.csv")
    row.update(
        {"Gross Credit (GC)": "10.50", "Net Credit (NC)": "10.40", "Commission (NC)": "0.10"}
    )
    report = load(Layout.ADYEN, write_csv(ADYEN_COLUMNS, [row]), name="tuesday.csv")
    assert (report.lines_loaded, report.lines_already_known) == (0, 1)
    assert SettlementLine.objects.count() == 1


def test_a_line_repeated_within_one_report_is_loaded_once():
    rows = [ADYEN_ROWS[0], ADYEN_ROWS[1], ADYEN_ROWS[0]]
    report = load(Layout.ADYEN, write_csv(ADYEN_COLUMNS, rows))
    assert (report.rows_total, report.lines_loaded, report.lines_already_known) == (3, 2, 1)
    assert sorted(SettlementLine.objects.values_list("line_number", flat=True)) == [2, 3]


def test_the_same_payment_booked_at_another_time_is_another_line():
    # The booking time is part of a line's identity: the provider settling a payment again
    # a day later is a second line (a duplicate for matching to find), not a re-sent one.
    monday = adyen_row("Settled", psp="P7", gross_credit="5.00", net_credit="5.00")
    tuesday = dict(monday, **{"Creation Date": "2026-11-21 10:00:00"})
    report = load(Layout.ADYEN, write_csv(ADYEN_COLUMNS, [monday, tuesday]))
    assert (report.lines_loaded, report.lines_already_known) == (2, 0)


def test_malformed_values_are_refused_with_line_numbers_and_nothing_is_written():
    rows = [dict(r) for r in ADYEN_ROWS[:3]]
    rows[0]["Gross Credit (GC)"] = "1,000.00"
    rows[2]["Creation Date"] = "20/11/2026"
    rows[2]["Net Debit (NC)"] = "50.001"
    content = write_csv(ADYEN_COLUMNS, rows)
    report, _ = services.receive_report(
        layout=Layout.ADYEN, provider_code="adyen", file_name="bad.csv", content=content
    )
    with pytest.raises(MalformedReport) as refused:
        services.load_report(settlement_import=report)

    expected = [
        {"line": 2, "column": "Gross Credit (GC)", "message": "'1,000.00' is not a decimal amount"},
        {
            "line": 4,
            "column": "Net Debit (NC)",
            "message": "50.001 has more decimals than EUR allows",
        },
        {"line": 4, "column": "Creation Date", "message": "'20/11/2026' is not a date and time"},
    ]
    assert refused.value.details["errors"] == expected
    report.refresh_from_db()
    assert report.status == SettlementImport.Status.REJECTED
    assert report.errors == expected
    assert SettlementLine.objects.count() == 0


def test_missing_required_columns_are_refused_at_line_one():
    columns = [c for c in ADYEN_COLUMNS if c not in ("Psp Reference", "Batch Number")]
    with pytest.raises(MalformedReport) as refused:
        load(Layout.ADYEN, write_csv(columns, ADYEN_ROWS[:1]))
    assert [(e["line"], e["column"]) for e in refused.value.details["errors"]] == [
        (1, "Psp Reference"),
        (1, "Batch Number"),
    ]
    assert SettlementLine.objects.count() == 0


def test_a_ragged_line_is_refused_with_its_line_number():
    content = write_csv(
        SANDBOX_COLUMNS,
        [sandbox_row("payment", provider="sbx", reference=f"R{i}", gross="1.00") for i in range(5)],
    )
    lines = content.split(b"\n")
    lines[3] = lines[3] + b",surplus"
    with pytest.raises(MalformedReport) as refused:
        load(Layout.SANDBOX, b"\n".join(lines), provider="sbx")
    (error,) = refused.value.details["errors"]
    assert error["line"] == 4
    assert "expected 11 columns" in error["message"]
    assert SettlementLine.objects.count() == 0


def test_unknown_currency_time_zone_and_foreign_provider_are_refused():
    sandbox = write_csv(
        SANDBOX_COLUMNS,
        [
            sandbox_row("payment", provider="sbx", reference="R1", gross="1.00", currency="XXX"),
            sandbox_row("payment", provider="other", reference="R2", gross="1.00"),
        ],
    )
    with pytest.raises(MalformedReport) as refused:
        load(Layout.SANDBOX, sandbox, provider="sbx")
    assert [(e["line"], e["column"]) for e in refused.value.details["errors"]] == [
        (2, "currency"),
        (2, "net_currency"),
        (3, "provider"),
    ]

    adyen = write_csv(
        ADYEN_COLUMNS,
        [
            adyen_row(
                "Settled", psp="P", gross_credit="1.00", net_credit="1.00", timezone="Mars/Base"
            )
        ],
    )
    with pytest.raises(MalformedReport) as refused:
        load(Layout.ADYEN, adyen)
    assert refused.value.details["errors"] == [
        {"line": 2, "column": "TimeZone", "message": "unknown time zone 'Mars/Base'"}
    ]
    assert SettlementLine.objects.count() == 0


def test_a_currency_we_do_not_keep_is_refused_even_when_every_amount_is_whole():
    # Whole amounts pass every decimals test, so only the currency check can refuse the line.
    row = adyen_row("Settled", psp="P1", gross_credit="10", net_credit="10")
    row["Net Currency"] = "XXX"
    with pytest.raises(MalformedReport) as refused:
        load(Layout.ADYEN, write_csv(ADYEN_COLUMNS, [row]))
    assert [(e["line"], e["column"]) for e in refused.value.details["errors"]] == [
        (2, "net_currency")
    ]
    assert SettlementLine.objects.count() == 0


def test_a_file_with_only_a_header_is_refused():
    with pytest.raises(MalformedReport):
        load(Layout.STRIPE, write_csv(STRIPE_COLUMNS, []), provider="stripe")
    assert SettlementLine.objects.count() == 0


def test_values_postgresql_would_accept_but_a_report_never_holds_are_refused():
    rows = [
        sandbox_row("payment", provider="sbx", reference="R1", gross="NaN"),
        sandbox_row("payment", provider="sbx", reference="R2", gross="1.00", booked_at="now"),
    ]
    with pytest.raises(MalformedReport) as refused:
        load(Layout.SANDBOX, write_csv(SANDBOX_COLUMNS, rows), provider="sbx")
    assert [(e["line"], e["column"]) for e in refused.value.details["errors"]] == [
        (2, "gross"),
        (2, "net"),
        (3, "booked_at"),
    ]
    assert SettlementLine.objects.count() == 0


def test_amounts_are_read_as_postgresql_reads_numbers():
    rows = [
        sandbox_row("payment", provider="sbx", reference="R1", gross="1e1", net="+10.0"),
        sandbox_row("payment", provider="sbx", reference="R2", gross=".5", fee="0", net="0.50"),
    ]
    load(Layout.SANDBOX, write_csv(SANDBOX_COLUMNS, rows), provider="sbx")
    assert sorted(SettlementLine.objects.values_list("gross", "net")) == [
        (Decimal("0.5"), Decimal("0.5")),
        (Decimal("10"), Decimal("10")),
    ]


def test_a_fee_that_is_not_a_number_is_refused_though_the_net_is_one():
    row = adyen_row("Settled", psp="P1", gross_credit="10.00", net_credit="9.90")
    row["Markup (NC)"] = "NaN"
    with pytest.raises(MalformedReport) as refused:
        load(Layout.ADYEN, write_csv(ADYEN_COLUMNS, [row]))
    assert [(e["line"], e["column"]) for e in refused.value.details["errors"]] == [
        (2, "Markup (NC)")
    ]
    assert SettlementLine.objects.count() == 0


def test_an_impossible_date_is_refused_and_nothing_is_written():
    row = sandbox_row(
        "payment", provider="sbx", reference="R1", gross="1.00", booked_at="2026-02-30T10:00:00Z"
    )
    with pytest.raises(MalformedReport) as refused:
        load(Layout.SANDBOX, write_csv(SANDBOX_COLUMNS, [row]), provider="sbx")
    (error,) = refused.value.details["errors"]
    assert "out of range" in error["message"]
    assert SettlementLine.objects.count() == 0
    assert SettlementImport.objects.get().status == SettlementImport.Status.REJECTED


def test_reports_dropped_in_the_watched_folder_are_received_and_moved(tmp_path):
    from reconciliation.services import queueing

    folder = tmp_path / "inbox" / Layout.SANDBOX / "sbx"
    folder.mkdir(parents=True)
    content = write_csv(
        SANDBOX_COLUMNS, [sandbox_row("payment", provider="sbx", reference="R1", gross="1.00")]
    )
    (folder / "day1.csv").write_bytes(content)
    stray = tmp_path / "inbox" / "no-such-layout" / "sbx"
    stray.mkdir(parents=True)
    (stray / "x.csv").write_bytes(content)

    (report,) = queueing.scan_inbox(inbox=tmp_path / "inbox")

    assert (report.layout, report.provider_code, report.file_name) == (
        Layout.SANDBOX,
        "sbx",
        "day1.csv",
    )
    assert (folder / "processed" / "day1.csv").exists()
    assert not (folder / "day1.csv").exists()
    assert (stray / "unknown" / "x.csv").exists()
    assert queueing.scan_inbox(inbox=tmp_path / "inbox") == []


# --- issue 15: an import is (provider, layout, bytes); merchant accounts are checked --------


def test_a_file_refused_for_the_wrong_layout_loads_with_the_right_one():
    content = write_csv(ADYEN_COLUMNS, ADYEN_ROWS[:2])
    with pytest.raises(MalformedReport):
        load(Layout.STRIPE, content, provider="adyen", name="picked-the-wrong-layout.csv")
    refused = SettlementImport.objects.get()
    assert refused.status == SettlementImport.Status.REJECTED

    report = load(Layout.ADYEN, content, name="right-layout.csv")

    assert report.pk != refused.pk
    assert (report.status, report.lines_loaded) == (SettlementImport.Status.LOADED, 2)
    # Received again, the loaded import answers; the refused one stays refused, as history.
    again, created = services.receive_report(
        layout=Layout.ADYEN, provider_code="adyen", file_name="again.csv", content=content
    )
    assert (again.pk, created) == (report.pk, False)
    refused.refresh_from_db()
    assert refused.status == SettlementImport.Status.REJECTED


def test_a_file_refused_for_its_content_loads_once_the_cause_is_fixed():
    ProviderPolicy.objects.create(provider_code="adyen", merchant_accounts=["CasinoUK"])
    content = write_csv(ADYEN_COLUMNS, ADYEN_ROWS[:2])
    with pytest.raises(MalformedReport) as refused:
        load(Layout.ADYEN, content)
    assert refused.value.details["errors"][0] == {
        "line": 2,
        "column": "Merchant Account",
        "message": "merchant account 'CasinoEU' is not one of adyen's (CasinoUK)",
    }
    assert SettlementLine.objects.count() == 0

    ProviderPolicy.objects.filter(provider_code="adyen").update(
        merchant_accounts=["CasinoUK", "CasinoEU"]
    )
    report = load(Layout.ADYEN, content, name="same-bytes.csv")
    assert (report.status, report.lines_loaded) == (SettlementImport.Status.LOADED, 2)
    assert SettlementImport.objects.count() == 2


def test_the_same_bytes_under_another_provider_are_another_import():
    content = write_csv(ADYEN_COLUMNS, ADYEN_ROWS[:2])
    first = load(Layout.ADYEN, content, provider="adyen")
    second = load(Layout.ADYEN, content, provider="adyen-latam")
    assert first.pk != second.pk
    assert sorted(SettlementLine.objects.values_list("provider_code", flat=True)) == [
        "adyen",
        "adyen",
        "adyen-latam",
        "adyen-latam",
    ]


def test_a_report_naming_another_providers_merchant_account_is_refused():
    ProviderPolicy.objects.create(provider_code="adyen", merchant_accounts=["CasinoEU"])
    ProviderPolicy.objects.create(provider_code="adyen-latam", merchant_accounts=["CasinoBR"])
    content = write_csv(ADYEN_COLUMNS, ADYEN_ROWS[:2])
    load(Layout.ADYEN, content, provider="adyen")

    with pytest.raises(MalformedReport) as refused:
        load(Layout.ADYEN, content, provider="adyen-latam", name="uploaded-to-the-wrong-one.csv")

    assert refused.value.details["errors"][:2] == [
        {
            "line": line,
            "column": "Merchant Account",
            "message": "merchant account 'CasinoEU' is provider adyen's, not adyen-latam's",
        }
        for line in (2, 3)
    ]
    assert not SettlementLine.objects.filter(provider_code="adyen-latam").exists()
    # Without a list of its own, a provider still refuses another provider's account.
    with pytest.raises(MalformedReport):
        load(Layout.ADYEN, content, provider="adyen-apac")


# --- issue 15: real-file variants, per provider and layout ---------------------------------


@pytest.fixture
def fast_path_only(monkeypatch):
    """A good file must never pay for the slow, line-by-line diagnosis."""

    def refuse(*args, **kwargs):
        raise AssertionError("a good file went down the slow path")

    monkeypatch.setattr(importing, "_refuse_with_every_error", refuse)


def european_adyen_rows():
    # Adyen's report settings: semicolon delimiter, decimal comma, point for thousands.
    return [
        adyen_row(
            "Settled",
            psp="8815000000000101",
            merchant_reference="DEP-101",
            gross_credit="1.234,56",
            net_credit="1.231,26",
            commission="3,30",
        ),
        adyen_row(
            "Refunded",
            psp="8815000000000101",
            modification="8815000000000102",
            gross_debit="20,00",
            net_debit="20,00",
        ),
    ]


def test_adyen_with_semicolons_and_decimal_commas_loads_on_the_fast_path(fast_path_only):
    ReportFormat.objects.create(
        provider_code="adyen",
        layout=Layout.ADYEN,
        delimiter=";",
        decimal_separator=",",
        thousands_separator=".",
    )
    content = write_csv(ADYEN_COLUMNS, european_adyen_rows(), delimiter=";")
    report = load(Layout.ADYEN, content)
    assert (report.status, report.lines_loaded) == (SettlementImport.Status.LOADED, 2)
    assert sorted(SettlementLine.objects.values_list("gross", "fee", "net")) == [
        (Decimal("-20.00"), Decimal("0"), Decimal("-20.00")),
        (Decimal("1234.56"), Decimal("3.30"), Decimal("1231.26")),
    ]


def test_thousands_separators_are_read_when_the_format_has_them(fast_path_only):
    ReportFormat.objects.create(
        provider_code="stripe", layout=Layout.STRIPE, thousands_separator=","
    )
    rows = [
        stripe_row(
            "charge",
            txn="txn_1",
            source="ch_1",
            payment_intent="pi_1",
            gross="12,345.00",
            fee="358.31",
            net="11,986.69",
        )
    ]
    load(Layout.STRIPE, write_csv(STRIPE_COLUMNS, rows), provider="stripe")
    line = SettlementLine.objects.get(record_type=RT.PAYMENT)
    assert (line.gross, line.fee, line.net) == (
        Decimal("12345.00"),
        Decimal("358.31"),
        Decimal("11986.69"),
    )


def test_a_thousands_separator_out_of_place_is_refused_not_read_as_digits():
    ReportFormat.objects.create(
        provider_code="adyen",
        layout=Layout.ADYEN,
        delimiter=";",
        decimal_separator=",",
        thousands_separator=".",
    )
    rows = european_adyen_rows()
    rows[0]["Gross Credit (GC)"] = "12.34,56"
    with pytest.raises(MalformedReport) as refused:
        load(Layout.ADYEN, write_csv(ADYEN_COLUMNS, rows, delimiter=";"))
    assert refused.value.details["errors"] == [
        {"line": 2, "column": "Gross Credit (GC)", "message": "'12.34,56' is not a decimal amount"}
    ]
    assert SettlementLine.objects.count() == 0


def test_a_wrong_delimiter_is_named_with_the_one_the_file_seems_to_use():
    content = write_csv(ADYEN_COLUMNS, ADYEN_ROWS[:2], delimiter=";")
    with pytest.raises(MalformedReport) as refused:
        load(Layout.ADYEN, content)
    (error,) = refused.value.details["errors"]
    assert error["line"] == 1
    assert error["message"] == (
        "the file seems delimited by semicolon (;), not by comma (,) as adyen's "
        "adyen_settlement_details reports are configured: set the delimiter of its report "
        "format to semicolon (;)"
    )


def test_trailing_totals_lines_are_recognised_per_layout_and_skipped(fast_path_only):
    totals = ["Total", "", "", "", "", "", "", "", "", "EUR", "20.00", "100.00", "", "EUR"]
    content = write_csv(ADYEN_COLUMNS, ADYEN_ROWS[:2], trailer=[[], totals, [""] * 3], crlf=True)
    report = load(Layout.ADYEN, content)
    assert (report.rows_total, report.lines_loaded, report.summary_lines_skipped) == (2, 2, 1)
    assert SettlementLine.objects.count() == 2

    stripe_totals = [["", "", "", "", "", "", "", "eur", "150.00", "4.95", "145.05", "total"]]
    rows = [
        stripe_row("charge", txn="txn_1", source="ch_1", payment_intent="pi_1", gross="100.00"),
        stripe_row("charge", txn="txn_2", source="ch_2", payment_intent="pi_2", gross="50.00"),
    ]
    report = load(
        Layout.STRIPE, write_csv(STRIPE_COLUMNS, rows, trailer=stripe_totals), provider="stripe"
    )
    assert (report.lines_loaded, report.summary_lines_skipped) == (2, 1)


def test_a_line_without_a_type_before_the_last_record_is_still_refused():
    rows = [dict(r) for r in ADYEN_ROWS[:3]]
    rows[1]["Type"] = ""
    with pytest.raises(MalformedReport) as refused:
        load(Layout.ADYEN, write_csv(ADYEN_COLUMNS, rows))
    assert (3, "Type") in [(e["line"], e["column"]) for e in refused.value.details["errors"]]
    assert SettlementLine.objects.count() == 0


def test_a_windows_1252_report_is_read_in_its_encoding(fast_path_only):
    ReportFormat.objects.create(provider_code="adyen", layout=Layout.ADYEN, encoding="windows-1252")
    row = adyen_row(
        "Settled", psp="P1", merchant_reference="Dépôt-€1", gross_credit="1.00", net_credit="1.00"
    )
    load(Layout.ADYEN, write_csv(ADYEN_COLUMNS, [row], encoding="cp1252"))
    assert SettlementLine.objects.get().merchant_reference == "Dépôt-€1"
