"""Money helpers every app may use: a currency's exponent, quantizing, formatting, validating.

This module sits below the ledger: it reads the `Currency` table and raises the ledger's
domain errors, and imports nothing that writes (`wallets.services` and the other service
modules import it, never the other way round; the import-linter contract in pyproject.toml
keeps it so). Compliance, payments and reconciliation take their money helpers from here.

Amounts are `Decimal` and exact in the currency's exponent (EUR 2, JPY 0, BTC 8, USDT 6): an
amount with more decimals than its currency has is refused, never rounded.
"""

from decimal import Decimal

from inputs import rules

from .errors import AmountOutOfRange, BadPrecision, NonPositiveAmount, UnknownCurrency
from .models import Currency

# Code -> exponent, filled on first use. A currency's exponent never changes once it is
# created (every stored amount was quantized to it), so one read per process is enough.
_exponents: dict[str, int] = {}


def currency_exponent(code: str) -> int:
    """The currency's number of decimals; `UnknownCurrency` if it is not a platform currency."""
    if code not in _exponents:
        exponent = Currency.objects.filter(code=code).values_list("exponent", flat=True).first()
        if exponent is None:
            raise UnknownCurrency(f"Unknown currency {code!r}.", currency=code)
        _exponents[code] = exponent
    return _exponents[code]


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of the currency: 0.01 for EUR, 1 for JPY, 0.00000001 for BTC."""
    return Decimal(1).scaleb(-currency_exponent(currency))


def quantize_money(amount: Decimal, currency: str) -> Decimal:
    """For display and storage of amounts already known to be exact in the currency."""
    return amount.quantize(minor_unit(currency))


def format_money(amount: Decimal, currency: str) -> str:
    """Fixed-point text with exactly the currency's decimals, as JSON carries money."""
    return f"{quantize_money(amount, currency):f}"


def validate_amount(amount, currency: str, *, allow_negative: bool = False) -> Decimal:
    """Return `amount` as a Decimal quantized to the currency's exponent.

    Text must follow the one amount syntax of the platform (`inputs.rules.parse_amount`: ASCII
    digits, no exponent, sign only where negatives are allowed); any amount must fit the
    NUMERIC(28, 8) columns. More decimals than the currency has is refused, never rounded.
    """
    if isinstance(amount, Decimal):
        value = amount
    elif isinstance(amount, str):
        try:
            # Any number of decimals here: more than the currency has is `bad_precision` below.
            value = rules.parse_amount(
                amount, allow_zero=True, allow_negative=True, max_decimals=rules.AMOUNT_MAX_LENGTH
            )
        except rules.InputError as error:
            raise AmountOutOfRange(f"{amount!r}: {error}", amount=amount) from None
    elif isinstance(amount, int | float) and not isinstance(amount, bool):
        # Adapters hand over numbers a provider sent (minor units, JSON numbers); text is where
        # ambiguous syntax (exponents, Unicode digits) comes from.
        value = Decimal(str(amount))
    else:
        raise AmountOutOfRange(f"{amount!r} is not an amount.", amount=str(amount))
    try:
        rules.check_amount_range(value)
    except rules.InputError as error:
        raise AmountOutOfRange(f"{amount}: {error}", amount=str(amount)) from None
    quantized = quantize_money(value, currency)
    if quantized != value:
        exponent = currency_exponent(currency)
        raise BadPrecision(
            f"{currency} allows {exponent} decimals; {value} has more.",
            currency=currency,
            exponent=exponent,
            amount=str(value),
        )
    if quantized == 0 or (quantized < 0 and not allow_negative):
        raise NonPositiveAmount(f"Amount must be positive, got {value}.", amount=str(value))
    return quantized
