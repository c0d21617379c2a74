"""DRF serializer fields for the input discipline (see rules.py for the why).

Use these, never a bare `CharField`, for money and identifiers: DRF's `CharField` trims
whitespace and turns JSON numbers into strings, `DecimalField` reads `1e2`, `BooleanField`
reads `"yes"` and `1`, `IntegerField` reads `"1.0"` and Unicode digits.
"""

from datetime import date, datetime, timedelta

from django.utils import timezone
from rest_framework import serializers

from . import rules


def _refuse(error: rules.InputError):
    raise serializers.ValidationError(str(error), code="invalid") from None


class AmountField(serializers.Field):
    """An amount as an ASCII decimal string; validated data is a `Decimal`.

    The currency's own decimals (EUR 2, JPY 0) are checked where the currency is known: the
    money services refuse more decimals than the currency has (`bad_precision`).
    """

    default_error_messages = {"null": "This field may not be null."}

    def __init__(self, *, allow_zero=False, allow_negative=False, **kwargs):
        self.allow_zero = allow_zero
        self.allow_negative = allow_negative
        kwargs.setdefault(
            "help_text",
            "Decimal as a string, at most the currency's decimals (EUR 2, JPY 0, BTC 8).",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return rules.parse_amount(
                data, allow_zero=self.allow_zero, allow_negative=self.allow_negative
            )
        except rules.InputError as error:
            _refuse(error)

    def to_representation(self, value):
        return f"{value:f}"


class IdentifierField(serializers.CharField):
    """An exact identifier: refused, never trimmed, if it has surrounding whitespace."""

    def __init__(self, *, max_length: int, **kwargs):
        kwargs["trim_whitespace"] = False
        kwargs.setdefault("allow_blank", False)
        super().__init__(max_length=max_length, **kwargs)

    def run_validation(self, data=serializers.empty):
        # CharField would turn a JSON number into a string; an id is a string or nothing.
        if data not in (serializers.empty, None) and not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.", code="invalid")
        return super().run_validation(data)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value == "" and self.allow_blank:
            return value
        try:
            return rules.check_identifier(value, max_length=self.max_length)
        except rules.InputError as error:
            _refuse(error)


class TextField(serializers.CharField):
    """Free text: a string (no JSON numbers), nothing unstorable, kept as sent."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def run_validation(self, data=serializers.empty):
        if data not in (serializers.empty, None) and not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.", code="invalid")
        return super().run_validation(data)

    def to_internal_value(self, data):
        try:
            return rules.check_text(super().to_internal_value(data))
        except rules.InputError as error:
            _refuse(error)


class CountryField(serializers.CharField):
    """ISO 3166-1 alpha-2, upper-cased."""

    def __init__(self, **kwargs):
        kwargs["trim_whitespace"] = False
        kwargs.setdefault("help_text", "ISO 3166-1 alpha-2, e.g. MT.")
        super().__init__(min_length=2, max_length=2, **kwargs)

    def to_internal_value(self, data):
        if data == "" and self.allow_blank:
            return ""
        try:
            return rules.check_country(data)
        except rules.InputError as error:
            _refuse(error)


class StrictBooleanField(serializers.BooleanField):
    """A JSON boolean: `true` or `false`, nothing that merely looks like one."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        raise serializers.ValidationError("Must be a JSON boolean.", code="invalid")


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (not a string, float or boolean) within bounds that default to bigint."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", rules.MAX_BIGINT)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError("Must be a JSON integer.", code="invalid")
        return data


class BoundedDateField(serializers.DateField):
    """An ISO date (YYYY-MM-DD) between `earliest` and today plus `future_days`."""

    def __init__(self, *, earliest: date = rules.EARLIEST_DATE, future_days: int = 0, **kwargs):
        self.earliest = earliest
        self.future_days = future_days
        kwargs.setdefault("input_formats", ["iso-8601"])
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a date string, YYYY-MM-DD.")
        value = super().to_internal_value(data)
        latest = timezone.now().date() + timedelta(days=self.future_days)
        try:
            return rules.check_date(value, earliest=self.earliest, latest=latest)
        except rules.InputError as error:
            _refuse(error)


class BoundedDateTimeField(serializers.DateTimeField):
    """An ISO date-time from 1900 to 100 years ahead: beyond, time-zone arithmetic overflows."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be an ISO 8601 date-time string.")
        value = super().to_internal_value(data)
        if (
            not datetime(1900, 1, 2, tzinfo=value.tzinfo)
            <= value
            <= datetime(2200, 1, 1, tzinfo=value.tzinfo)
        ):
            raise serializers.ValidationError("Must be between 1900 and 2200.")
        return value


class CurrencyField(serializers.CharField):
    """A currency code: 2-8 ASCII letters or digits, upper-cased (`eur` is EUR). Whether the
    platform keeps wallets in it is the services' question (`unknown_currency`)."""

    def __init__(self, **kwargs):
        kwargs["trim_whitespace"] = False
        kwargs.setdefault("help_text", "Currency code, e.g. EUR.")
        super().__init__(min_length=2, max_length=8, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not rules.CURRENCY.fullmatch(data):
            raise serializers.ValidationError(
                "A currency code: 2 to 8 ASCII letters or digits, e.g. EUR.", code="invalid"
            )
        return data.upper()
