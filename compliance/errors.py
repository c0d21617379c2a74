"""Compliance's domain errors; codes are a public contract with casino frontends."""

from wallets.errors import DomainError


class SelfExcluded(DomainError):
    """The player has self-excluded and may not deposit or play until the exclusion ends."""

    code = "self_excluded"
    http_status = 403


class TimedOut(DomainError):
    """The player is on a time-out and may not deposit or play until it ends."""

    code = "timed_out"
    http_status = 403


class NotPermitted(DomainError):
    """The staff user's role does not allow this compliance action."""

    code = "permission_denied"
    http_status = 403


class InvalidTransition(DomainError):
    """The case or request cannot make this move from its current state."""

    code = "invalid_transition"
    http_status = 409


class NoteRequired(DomainError):
    """This action needs a reason or note."""

    code = "note_required"
    http_status = 400


class InvalidLimit(DomainError):
    """The limit, period or exclusion length is not one the platform accepts."""

    code = "invalid_limit"
    http_status = 400


class DocumentsMissing(DomainError):
    """The verification lacks a valid (unexpired) document this level needs."""

    code = "documents_missing"
    http_status = 422


class SanctionsListUnavailable(DomainError):
    """The sanctions list files are missing or unreadable."""

    code = "sanctions_list_unavailable"
    http_status = 503
