"""Reconciliation's domain errors; codes are part of the API contract."""

from wallets.errors import DomainError


class MalformedReport(DomainError):
    """The settlement report cannot be read; nothing of it was imported."""

    code = "malformed_report"
    http_status = 400


class ReportNotLoadable(DomainError):
    """Only a received report can be loaded."""

    code = "report_not_loadable"
    http_status = 409


class BreakTransitionRefused(DomainError):
    """The break cannot make that move from its current status."""

    code = "break_transition_refused"
    http_status = 409


class FourEyesRequired(DomainError):
    """A write-off above the threshold must be approved by a second user with the
    approve_write_off permission."""

    code = "four_eyes_required"
    http_status = 403


class NothingToBook(DomainError):
    """The break has no amount to book."""

    code = "nothing_to_book"
    http_status = 409
