"""The compliance audit trail, and the checks every staff action passes before it writes:
the actor's role, a reason where one is required, a legal state-machine move."""

from django_fsm import can_proceed

from ..errors import InvalidTransition, NoteRequired, NotPermitted
from ..models import AuditEvent


def audit(*, action: str, actor=None, player=None, case=None, subject="", reason="", **details):
    """Append one row to the compliance audit trail (inside the caller's transaction)."""
    return AuditEvent.objects.create(
        action=action,
        actor=actor if getattr(actor, "pk", None) else None,
        player=player,
        case=case,
        subject=subject,
        reason=reason,
        details=details,
    )


def require_perm(actor, perm: str) -> None:
    """Roles are enforced here, not only in the admin: every caller goes through services."""
    if actor is None or not actor.is_authenticated or not actor.has_perm(f"compliance.{perm}"):
        raise NotPermitted(f"Your role does not allow this ({perm}).", permission=perm)


def require_note(text: str, what: str = "This action") -> str:
    if not text or not text.strip():
        raise NoteRequired(f"{what} needs a reason or note.")
    return text.strip()


def apply_transition(obj, name: str, **kwargs):
    method = getattr(obj, name)
    if not can_proceed(method):
        raise InvalidTransition(
            f"Cannot {name.replace('_', ' ')} from {obj.status}.", status=obj.status
        )
    method(**kwargs)
