"""The operator console's amount fields read amounts by the same rule as the API."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from payments.admin import RefundForm
from wallets.admin import AdjustmentForm


@pytest.mark.parametrize("typed", ["1e30", "١٠", "１０", "1_0.00", " 5.00", "+5", ".5", "5."])
def test_console_amounts_refuse_what_the_api_refuses(typed):
    form = RefundForm({"amount": typed, "reason": "asked"})
    assert not form.is_valid()
    assert "amount" in form.errors


def test_console_amounts_read_plain_decimals_and_signed_adjustments():
    refund = RefundForm({"amount": "12.50", "reason": "asked"})
    assert refund.is_valid(), refund.errors
    assert refund.cleaned_data["amount"] == Decimal("12.50")
    field = AdjustmentForm.base_fields["amount"]
    assert field.clean("-3.25") == Decimal("-3.25")
    with pytest.raises(ValidationError):
        field.clean("-1e3")
