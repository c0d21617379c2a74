"""Domain errors. Every app raises subclasses of `DomainError`; the API turns them into
`{"error": {"code", "message", "details"}}` with the class's HTTP status.

The codes are a public contract with casino frontends: never rename one.
"""


class DomainError(Exception):
    code = "domain_error"
    http_status = 422

    def __init__(self, message: str = "", **details):
        super().__init__(message or self.__doc__ or self.code)
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details


class InsufficientFunds(DomainError):
    """The account does not hold enough money for this movement."""

    code = "insufficient_funds"


class PlayerBlocked(DomainError):
    """The player is frozen or closed and may not start this movement."""

    code = "player_blocked"
    http_status = 403


class UnknownCurrency(DomainError):
    """The currency is not one the platform keeps wallets in."""

    code = "unknown_currency"
    http_status = 400


class BadPrecision(DomainError):
    """The amount has more decimals than the currency allows; it is refused, never rounded."""

    code = "bad_precision"
    http_status = 400


class NonPositiveAmount(DomainError):
    """Amounts must be greater than zero."""

    code = "non_positive_amount"
    http_status = 400


class AmountOutOfRange(NonPositiveAmount):
    """The amount is not a plain decimal number a money column can hold (NUMERIC(28, 8)).

    A kind of "not a usable amount": callers that catch NonPositiveAmount catch it too."""

    code = "amount_out_of_range"
    http_status = 400


class IdempotencyConflict(DomainError):
    """This idempotency key was already used for a different request."""

    code = "idempotency_conflict"
    http_status = 409


class UnbalancedEntry(DomainError):
    """The postings of an entry must sum to zero in every currency."""

    code = "unbalanced_entry"
    http_status = 500


class InvalidReversal(DomainError):
    """Only a bet entry that has not been reversed yet can be reversed."""

    code = "invalid_reversal"
    http_status = 409


class MissingReason(DomainError):
    """A manual adjustment needs a reason and an actor."""

    code = "missing_reason"
    http_status = 400


class InvalidStatusChange(DomainError):
    """The player cannot move to that status from the current one."""

    code = "invalid_status_change"
    http_status = 409
