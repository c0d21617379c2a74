"""Django form fields for the input discipline, for the operator console's forms."""

from django import forms
from django.core.exceptions import ValidationError

from . import rules


class AmountFormField(forms.CharField):
    """An amount typed as plain decimal text; cleaned data is a `Decimal`.

    Django's `DecimalField` reads `1e30`, Arabic-Indic digits and `1_0`; this field reads only what
    `rules.parse_amount` reads.
    """

    def __init__(self, *, allow_zero=False, allow_negative=False, **kwargs):
        self.allow_zero = allow_zero
        self.allow_negative = allow_negative
        # The length is the rule's to check (a max_length validator would run on the Decimal).
        kwargs.setdefault(
            "widget",
            forms.TextInput(attrs={"maxlength": rules.AMOUNT_MAX_LENGTH, "inputmode": "decimal"}),
        )
        kwargs["strip"] = False
        super().__init__(**kwargs)

    def to_python(self, value):
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return rules.parse_amount(
                text, allow_zero=self.allow_zero, allow_negative=self.allow_negative
            )
        except rules.InputError as error:
            raise ValidationError(str(error), code="invalid") from None
