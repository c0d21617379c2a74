"""Writes of staff authentication: enrol an authenticator, issue recovery codes, check a code,
reset a user's devices. The devices are django-otp's models (TOTPDevice, StaticDevice)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django_otp import devices_for_user
from django_otp.models import Device, VerifyNotAllowed
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

AUTHENTICATOR_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"


def confirmed_authenticator(*, user: AbstractBaseUser) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def pending_authenticator(*, user: AbstractBaseUser) -> TOTPDevice:
    """The unconfirmed authenticator a user is enrolling; the same one on every reload of the
    enrolment page, so the QR code a user scanned stays valid until confirmed."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)
    return device


def confirm_authenticator(*, device: TOTPDevice, code: str) -> list[str] | None:
    """Confirm an enrolling authenticator with a code it shows. On success the user has
    exactly one confirmed authenticator and a fresh set of recovery codes, which are returned
    (the only time they are readable outside the database); on a wrong code, None."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk, confirmed=False)
        if not device.verify_token(_digits(code)):
            return None
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user_id=device.user_id).exclude(pk=device.pk).delete()
        return issue_recovery_codes(user=device.user)


def issue_recovery_codes(*, user: AbstractBaseUser) -> list[str]:
    """Replace the user's recovery codes with new ones; the old ones stop working."""
    with transaction.atomic():
        StaticDevice.objects.filter(user=user).delete()
        device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(settings.STAFF_RECOVERY_CODE_COUNT)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    return codes


def recovery_codes_left(*, user: AbstractBaseUser) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


@dataclass(frozen=True)
class CodeCheck:
    device: Device | None
    # Set when every device refused to check at all: too many wrong codes in a row.
    retry_after_seconds: int = 0


def check_second_factor(*, user: AbstractBaseUser, code: str) -> CodeCheck:
    """Check a TOTP code or a recovery code against the user's confirmed devices. A used
    recovery code is deleted; a wrong code counts against each device's throttle."""
    code = code.strip().replace(" ", "").replace("-", "").lower()
    devices = list(devices_for_user(user, confirmed=True))
    waits = []
    for device in devices:
        allowed, why = device.verify_is_allowed()
        if not allowed:
            if why and why.get("reason") == VerifyNotAllowed.N_FAILED_ATTEMPTS:
                waits.append(_throttle_wait_seconds(why["locked_until"]))
            continue
        token = _digits(code) if isinstance(device, TOTPDevice) else code
        if token and device.verify_token(token):
            return CodeCheck(device=device)
    if devices and len(waits) == len(devices):
        return CodeCheck(device=None, retry_after_seconds=min(waits))
    return CodeCheck(device=None)


def _throttle_wait_seconds(locked_until) -> int:
    """Seconds until django-otp lets the device check a code again."""
    return max(1, int((locked_until - timezone.now()).total_seconds()) + 1)


def reset_second_factor(*, user: AbstractBaseUser, by: AbstractBaseUser, reason: str) -> int:
    """Delete all of a user's second-factor devices (lost phone): their next login enrols a new
    authenticator, and any session they verified with the old one ends (staff/middleware.py).
    Recorded in the admin's history of the user. Returns how many devices were removed."""
    with transaction.atomic():
        removed = 0
        for device in devices_for_user(user, confirmed=None):
            device.delete()
            removed += 1
        LogEntry.objects.log_actions(
            user_id=by.pk,
            queryset=[user],
            action_flag=CHANGE,
            change_message=f"Reset two-factor authentication ({removed} devices): {reason}",
            single_object=True,
        )
    return removed


def _digits(code: str) -> str:
    """A TOTP code as typed: spaces dropped; anything but ASCII digits is no code at all."""
    code = code.replace(" ", "")
    return code if code.isascii() and code.isdigit() and len(code) <= 8 else ""


__all__ = [
    "AUTHENTICATOR_NAME",
    "RECOVERY_NAME",
    "CodeCheck",
    "check_second_factor",
    "confirm_authenticator",
    "confirmed_authenticator",
    "issue_recovery_codes",
    "pending_authenticator",
    "recovery_codes_left",
    "reset_second_factor",
]
