"""Money helpers (`wallets.money`): what they answer, and that they sit below the ledger."""

import ast
from decimal import Decimal

import pytest

from tests.module_imports import REPOSITORY, import_alone
from wallets import money
from wallets.errors import BadPrecision, NonPositiveAmount, UnknownCurrency

HELPERS = {"currency_exponent", "minor_unit", "quantize_money", "format_money", "validate_amount"}


@pytest.mark.django_db
def test_exponents_and_minor_units_come_from_the_currency_table():
    assert [money.currency_exponent(c) for c in ("EUR", "JPY", "BTC", "USDT")] == [2, 0, 8, 6]
    assert money.minor_unit("EUR") == Decimal("0.01")
    assert money.minor_unit("JPY") == Decimal("1")
    assert money.minor_unit("BTC") == Decimal("0.00000001")
    with pytest.raises(UnknownCurrency):
        money.currency_exponent("XXX")


@pytest.mark.django_db
def test_an_exponent_is_read_once_per_process(django_assert_num_queries):
    money._exponents.pop("GBP", None)
    with django_assert_num_queries(1):
        assert money.currency_exponent("GBP") == 2
    with django_assert_num_queries(0):
        assert money.currency_exponent("GBP") == 2
        assert money.format_money(Decimal("3.5"), "GBP") == "3.50"


@pytest.mark.django_db
def test_amounts_are_formatted_with_exactly_the_currencys_decimals():
    assert money.format_money(Decimal("1.5"), "EUR") == "1.50"
    assert money.format_money(Decimal("1000"), "JPY") == "1000"
    assert money.format_money(Decimal("0.1"), "BTC") == "0.10000000"
    assert money.quantize_money(Decimal("2"), "USDT") == Decimal("2.000000")


@pytest.mark.django_db
def test_validation_refuses_extra_decimals_rather_than_rounding():
    assert money.validate_amount("10.10", "EUR") == Decimal("10.10")
    with pytest.raises(BadPrecision) as refused:
        money.validate_amount("10.001", "EUR")
    assert refused.value.details == {"currency": "EUR", "exponent": 2, "amount": "10.001"}
    with pytest.raises(BadPrecision):
        money.validate_amount("1.5", "JPY")


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0", "-1.00", "abc", "NaN", "Infinity"])
def test_validation_refuses_what_is_not_a_positive_amount(amount):
    with pytest.raises(NonPositiveAmount):
        money.validate_amount(amount, "EUR")


@pytest.mark.django_db
def test_a_negative_amount_passes_only_when_allowed():
    assert money.validate_amount("-5.25", "EUR", allow_negative=True) == Decimal("-5.25")


# --- the seam -------------------------------------------------------------------------------


def test_money_helpers_load_without_the_ledger_services():
    alone = import_alone("wallets.money")
    assert "wallets.services" not in alone["before"]
    assert alone["loaded"] == ["wallets.money"]


def test_the_import_probe_sees_what_a_module_pulls_in():
    # The check above would pass vacuously if the probe saw nothing: the ledger's services
    # module, imported alone, is seen loading the money helpers.
    assert {"wallets.services", "wallets.money"} <= set(import_alone("wallets.services")["loaded"])


def _module_name(path, root) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def money_helpers_taken_from_the_ledger(path, root=REPOSITORY) -> list[str]:
    """Every place in `path` (a module under `root`) that gets a money helper through
    `wallets.services`."""
    module = _module_name(path, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    ledger_names = set()  # names bound to the wallets.services module in this file
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, path.name == "__init__.py")
            for alias in node.names:
                if source == "wallets.services" and alias.name in HELPERS:
                    found.append(f"{path}:{node.lineno} imports {alias.name}")
                if source == "wallets" and alias.name == "services":
                    ledger_names.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "wallets.services" and alias.asname:
                    ledger_names.add(alias.asname)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in HELPERS
            and isinstance(node.value, ast.Name)
            and node.value.id in ledger_names
        ):
            found.append(f"{path}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def test_no_app_takes_money_helpers_from_the_ledger_services():
    """Every app and the tests import `wallets.money`, never the ledger's write module."""
    checked = [
        path
        for folder in ("wallets", "compliance", "payments", "reconciliation", "config", "tests")
        for path in sorted((REPOSITORY / folder).rglob("*.py"))
        if path != REPOSITORY / "wallets" / "services.py"
    ]
    assert len(checked) > 100
    found = [hit for path in checked for hit in money_helpers_taken_from_the_ledger(path)]
    assert found == []


def test_the_guard_catches_each_way_of_reaching_the_helpers_through_the_ledger(tmp_path):
    (tmp_path / "wallets").mkdir()
    sample = tmp_path / "wallets" / "sample.py"
    sample.write_text(
        "from wallets.services import quantize_money\n"
        "from . import services\n"
        "from wallets import services as ledger\n"
        "import wallets.services as write_side\n"
        "services.format_money\n"
        "ledger.validate_amount\n"
        "write_side.minor_unit\n"
        "from wallets.money import currency_exponent\n"
        "ledger.post_entry\n"
    )
    found = money_helpers_taken_from_the_ledger(sample, root=tmp_path)
    assert [hit.split(" ", 1)[1] for hit in found] == [
        "imports quantize_money",
        "uses services.format_money",
        "uses ledger.validate_amount",
        "uses write_side.minor_unit",
    ]
    # `from . import services` outside wallets is another app's services: not the ledger.
    (tmp_path / "compliance").mkdir()
    other = tmp_path / "compliance" / "sample.py"
    other.write_text("from . import services\nservices.quantize_money\n")
    assert money_helpers_taken_from_the_ledger(other, root=tmp_path) == []
