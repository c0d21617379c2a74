"""Payment domain errors; codes are a public contract with casino frontends."""

from wallets.errors import DomainError


class MethodUnavailable(DomainError):
    """The payment method is unknown, disabled, or does not take this currency or amount."""

    code = "method_unavailable"
    http_status = 400


class PaymentRefused(DomainError):
    """Compliance refused this payment; `details.reasons` says why."""

    code = "payment_refused"
    http_status = 403


class InvalidTransition(DomainError):
    """The payment is not in a state that allows this action."""

    code = "invalid_transition"
    http_status = 409


class FourEyesViolation(DomainError):
    """The same staff user cannot approve a withdrawal twice."""

    code = "four_eyes_same_approver"
    http_status = 409


class NotStaff(DomainError):
    """Only staff users may approve or reject withdrawals."""

    code = "permission_denied"
    http_status = 403


class RefundTooLarge(DomainError):
    """The refund exceeds what is left to refund on the deposit."""

    code = "refund_too_large"
    http_status = 409


class InvalidInstrument(DomainError):
    """The payout instrument is malformed (bad IBAN checksum, wrong address for the network)."""

    code = "invalid_instrument"
    http_status = 400


class RefundNotSupported(DomainError):
    """This provider cannot send a payment back; pay the player with a withdrawal instead."""

    code = "refund_not_supported"
    http_status = 409
