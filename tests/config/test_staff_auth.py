"""The console's login: password, then a second factor; lockout; session limits; resets."""

import time

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from staff import services, signals
from tests.conftest import totp_code

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-password-1"
# Each wrong code makes django-otp refuse the next check for a while (1 s, 2 s, 4 s...). Tests
# about something else turn that off rather than wait; the throttle has its own test.
no_otp_throttle = override_settings(OTP_TOTP_THROTTLE_FACTOR=0, OTP_STATIC_THROTTLE_FACTOR=0)
LOGIN = "/admin/login/"


def staff_user(username="ops", *, superuser=True, groups=()):
    users = get_user_model().objects
    if superuser:
        user = users.create_superuser(username, f"{username}@example.com", PASSWORD)
    else:
        user = users.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    for group in groups:
        user.groups.add(group)
    return user


def enrolled(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def password_step(client, username="ops", password=PASSWORD, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def all_changelist_urls():
    return sorted(
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in admin.site._registry
    )


# --- the second factor gates everything ----------------------------------------------------


def test_a_password_only_session_reaches_no_admin_page(client):
    user = staff_user()
    enrolled(user)
    assert password_step(client).status_code == 302
    urls = [
        reverse("admin:index"),
        reverse("admin:password_change"),
        reverse("admin:staff_security"),
        *{reverse("admin:app_list", args=[m._meta.app_label]) for m in admin.site._registry},
        *all_changelist_urls(),
        *(
            reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_change", args=[1])
            for m in admin.site._registry
        ),
    ]
    assert len(urls) > 40
    verify = reverse("admin:staff_verify")
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(f"{verify}?next="), url


def test_a_verified_session_reaches_every_changelist(client):
    client.force_login(staff_user())
    for url in all_changelist_urls():
        assert client.get(url).status_code == 200, url


def test_the_admin_site_itself_refuses_an_unverified_user(rf):
    request = rf.get("/admin/")
    request.user = staff_user()
    request.user.is_verified = lambda: False
    assert not admin.site.has_permission(request)
    request.user.is_verified = lambda: True
    assert admin.site.has_permission(request)


@override_settings(API_DOCS_PUBLIC=False)
def test_a_password_only_session_is_anonymous_on_the_api(client):
    user = staff_user()
    client.force_login_password_only(user)
    breaks = "/api/v1/reconciliation/breaks"
    assert client.get(breaks).status_code in (401, 403)
    assert client.get("/api/schema/").status_code in (401, 403)
    client.force_login(user)
    assert client.get(breaks).status_code == 200
    assert client.get("/api/schema/").status_code == 200


def test_the_cashier_needs_the_second_factor(client):
    user = staff_user()
    client.force_login_password_only(user)
    response = client.get("/cashier/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:staff_enrol"))
    client.force_login(user)
    assert client.get("/cashier/").status_code == 200


# --- verifying with a code -----------------------------------------------------------------


@no_otp_throttle
def test_password_then_totp_code_opens_the_console(client):
    device = enrolled(staff_user())
    response = password_step(client)
    response = client.get(response["Location"], follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("admin:staff_verify"))
    wrong = client.post(reverse("admin:staff_verify"), {"code": "000000"})
    assert "That code is not valid" in wrong.text
    assert client.get(reverse("admin:index")).status_code == 302

    code = totp_code(device)
    response = client.post(
        reverse("admin:staff_verify"),
        {"code": code, "next": "/admin/wallets/player/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/wallets/player/"
    assert client.get(reverse("admin:index")).status_code == 200


def test_a_used_totp_code_does_not_work_twice(client):
    device = enrolled(staff_user())
    code = totp_code(device)
    password_step(client)
    assert client.post(reverse("admin:staff_verify"), {"code": code}).status_code == 302
    other = client_class_login(client)
    password_step(other)
    replay = other.post(reverse("admin:staff_verify"), {"code": code})
    assert replay.status_code == 200
    assert "not valid" in replay.text


def client_class_login(client):
    return type(client)()


def test_a_recovery_code_works_once(client):
    user = staff_user()
    enrolled(user)
    code = services.issue_recovery_codes(user=user)[0]
    password_step(client)
    response = client.post(reverse("admin:staff_verify"), {"code": code.upper()})
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200
    assert services.recovery_codes_left(user=user) == 9

    again = client_class_login(client)
    password_step(again)
    assert again.post(reverse("admin:staff_verify"), {"code": code}).status_code == 200
    assert again.get(reverse("admin:index")).status_code == 302


def test_unicode_digits_are_not_a_totp_code(client):
    device = enrolled(staff_user())
    arabic = "".join(chr(0x0660 + int(d)) for d in totp_code(device))
    password_step(client)
    assert client.post(reverse("admin:staff_verify"), {"code": arabic}).status_code == 200
    assert client.get(reverse("admin:index")).status_code == 302


@override_settings(OTP_TOTP_THROTTLE_FACTOR=60, OTP_STATIC_THROTTLE_FACTOR=60)
def test_wrong_codes_slow_the_device_down(client):
    device = enrolled(staff_user())
    services.issue_recovery_codes(user=device.user)
    password_step(client)
    client.post(reverse("admin:staff_verify"), {"code": "000000"})
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    # Throttled: even the right code is not checked (django-otp), and the page says how long.
    response = client.post(reverse("admin:staff_verify"), {"code": totp_code(device)})
    assert "Too many wrong codes: wait 6" in response.text  # 60 s, less the time passed
    assert client.get(reverse("admin:index")).status_code == 302


# --- enrolment -----------------------------------------------------------------------------


@no_otp_throttle
def test_first_login_enrols_an_authenticator_and_shows_recovery_codes_once(client):
    user = staff_user()
    response = password_step(client)
    response = client.get(response["Location"], follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("admin:staff_enrol"))
    page = response.text
    assert "<svg" in page and "otpauth://totp/Casino%20back-office%3Aops?secret=" in page
    pending = TOTPDevice.objects.get(user=user)
    assert not pending.confirmed
    # Reloading keeps the same key: a QR code already scanned stays good.
    client.get(reverse("admin:staff_enrol"))
    assert TOTPDevice.objects.get(user=user).key == pending.key

    assert "does not match" in client.post(reverse("admin:staff_enrol"), {"code": "1"}).text
    shown = client.post(reverse("admin:staff_enrol"), {"code": totp_code(pending)})
    assert shown.status_code == 200
    codes = list(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert len(codes) == 10
    for code in codes:
        assert code in shown.text
    assert TOTPDevice.objects.get(user=user).confirmed
    assert client.get(reverse("admin:index")).status_code == 200
    # The codes are never shown again: the security page only counts them.
    security = client.get(reverse("admin:staff_security")).text
    assert not any(code in security for code in codes)
    assert 'id="codes-left">10<' in security


def test_an_enrolled_user_cannot_enrol_a_second_device_without_the_first(client):
    user = staff_user()
    enrolled(user)
    password_step(client)
    response = client.get(reverse("admin:staff_enrol"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:staff_verify"))
    assert TOTPDevice.objects.filter(user=user).count() == 1


def test_a_verified_user_replaces_their_authenticator(client):
    user = staff_user()
    old = enrolled(user)
    client.force_login(user)
    client.get(reverse("admin:staff_enrol"))
    new = TOTPDevice.objects.get(user=user, confirmed=False)
    assert client.post(reverse("admin:staff_enrol"), {"code": totp_code(new)}).status_code == 200
    assert list(TOTPDevice.objects.filter(user=user)) == [new]
    assert not TOTPDevice.objects.filter(pk=old.pk).exists()
    assert client.get(reverse("admin:index")).status_code == 200


@no_otp_throttle
def test_new_recovery_codes_need_a_current_code(client):
    user = staff_user()
    device = enrolled(user)
    old = services.issue_recovery_codes(user=user)
    client.force_login(user)
    refused = client.post(reverse("admin:staff_security"), {"code": "123456"})
    assert "not valid" in refused.text
    assert services.recovery_codes_left(user=user) == 10
    shown = client.post(reverse("admin:staff_security"), {"code": totp_code(device)})
    new = set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert new and not new & set(old)
    assert all(code in shown.text for code in new)


# --- lockout -------------------------------------------------------------------------------


@override_settings(AXES_FAILURE_LIMIT=3)
def test_wrong_passwords_lock_the_username_out_with_a_clear_answer(client):
    staff_user()
    for _ in range(2):
        assert password_step(client, password="wrong").status_code == 200
    locked = password_step(client, password="wrong")
    assert locked.status_code == 429
    assert locked["Retry-After"] == "900"
    text = " ".join(locked.text.split())
    assert "Login locked" in text
    assert "Too many failed login attempts (3 wrong passwords or codes)" in text
    assert "for the account <strong>ops</strong> or from your network address" in text
    assert "Try again in 15 minutes" in text
    # The right password from another address is refused too: the username is locked.
    right = password_step(client, REMOTE_ADDR="198.51.100.7")
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


@override_settings(AXES_FAILURE_LIMIT=3)
def test_wrong_passwords_lock_the_address_out_for_every_username(client):
    staff_user("alice")
    staff_user("bob")
    for name in ("x1", "x2", "x3"):
        password_step(client, name, "wrong")
    assert password_step(client, "alice").status_code == 429
    assert password_step(client, "bob", REMOTE_ADDR="198.51.100.8").status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3)
def test_wrong_second_factor_codes_count_towards_the_lockout(client):
    device = enrolled(staff_user())
    password_step(client)
    for code in ("000000", "000001"):
        assert client.post(reverse("admin:staff_verify"), {"code": code}).status_code == 200
    device.throttle_reset()
    locked = client.post(reverse("admin:staff_verify"), {"code": "000002"})
    assert locked.status_code == 429
    assert "Login locked" in locked.text
    assert "_auth_user_id" not in client.session
    # Neither a fresh password step nor the right code gets in during the cool-off.
    assert password_step(client, REMOTE_ADDR="198.51.100.9").status_code == 429


@override_settings(AXES_FAILURE_LIMIT=3)
def test_a_password_alone_does_not_clear_the_failures_both_factors_do(client):
    from axes.models import AccessAttempt

    device = enrolled(staff_user())
    password_step(client, password="wrong")
    password_step(client, password="wrong")
    assert password_step(client).status_code == 302
    assert AccessAttempt.objects.filter(username="ops").exists()
    client.post(reverse("admin:staff_verify"), {"code": totp_code(device)})
    assert not AccessAttempt.objects.filter(username="ops").exists()


@override_settings(
    AXES_FAILURE_LIMIT=2,
    CLIENT_IP_HEADER="X-Real-IP",
)
def test_behind_the_proxy_the_lockout_keys_on_the_forwarded_client_address(client):
    staff_user("alice")
    for name in ("x1", "x2"):
        password_step(client, name, "wrong", HTTP_X_REAL_IP="203.0.113.5")
    assert password_step(client, "alice", HTTP_X_REAL_IP="203.0.113.5").status_code == 429
    # Same proxy (REMOTE_ADDR), another client: not locked.
    assert password_step(client, "alice", HTTP_X_REAL_IP="203.0.113.6").status_code == 302


# --- sessions ------------------------------------------------------------------------------


def age_session(client, *, idle=0, since_login=0):
    session = client.session
    session[signals.LAST_SEEN_AT] -= idle
    session[signals.LOGGED_IN_AT] -= since_login
    session.save()


@override_settings(SESSION_IDLE_TIMEOUT_SECONDS=600)
def test_an_idle_session_ends(client):
    client.force_login(staff_user())
    age_session(client, idle=599)
    assert client.get(reverse("admin:index")).status_code == 200
    age_session(client, idle=601)
    response = client.get("/admin/wallets/player/", follow=True)
    assert response.redirect_chain[0][0] == f"{LOGIN}?next=%2Fadmin%2Fwallets%2Fplayer%2F"
    assert "ended after 10 minutes without activity" in response.text
    assert client.get(reverse("admin:index")).status_code == 302


@override_settings(SESSION_ABSOLUTE_AGE_SECONDS=3600, SESSION_IDLE_TIMEOUT_SECONDS=600)
def test_a_busy_session_ends_at_its_absolute_age(client):
    client.force_login(staff_user())
    age_session(client, since_login=3599)
    assert client.get(reverse("admin:index")).status_code == 200
    age_session(client, since_login=2)
    response = client.get(reverse("admin:index"), follow=True)
    assert "maximum age of 1 hours" in response.text


@override_settings(SESSION_IDLE_TIMEOUT_SECONDS=600)
def test_an_expired_session_is_anonymous_on_the_api(client):
    client.force_login(staff_user())
    breaks = "/api/v1/reconciliation/breaks"
    assert client.get(breaks).status_code == 200
    age_session(client, idle=601)
    assert client.get(breaks).status_code in (401, 403)


def test_activity_moves_the_idle_clock(client):
    client.force_login(staff_user())
    age_session(client, idle=120)
    before = client.session[signals.LAST_SEEN_AT]
    client.get(reverse("admin:index"))
    assert client.session[signals.LAST_SEEN_AT] >= int(time.time()) - 1 > before


# --- resets --------------------------------------------------------------------------------


def test_a_superuser_resets_a_users_second_factor_from_the_console(client):
    from django.test import Client

    victim = staff_user("lost-phone", superuser=False)
    enrolled(victim)
    services.issue_recovery_codes(user=victim)
    victim_client = Client()
    victim_client.force_login(victim)
    assert victim_client.get(reverse("admin:index")).status_code == 200

    client.force_login(staff_user("root"))
    changelist = reverse("admin:auth_user_changelist")
    form = {"action": "reset_second_factor", "_selected_action": [victim.pk]}
    assert "Reset two-factor authentication" in client.post(changelist, form).text
    done = client.post(changelist, {**form, "apply": "1", "reason": "INC-42 phone lost"})
    assert done.status_code == 302
    assert not TOTPDevice.objects.filter(user=victim).exists()
    assert not StaticDevice.objects.filter(user=victim).exists()
    entry = LogEntry.objects.get(object_id=str(victim.pk))
    assert entry.user.username == "root"
    assert "INC-42 phone lost" in entry.get_change_message()

    # The session the old device verified is over: back to the password, then enrolment.
    response = victim_client.get(reverse("admin:index"))
    assert response["Location"].startswith(LOGIN)
    assert "_auth_user_id" not in victim_client.session


def test_only_superusers_may_reset_a_second_factor(client):
    staff = staff_user("clerk", superuser=False)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_user", "change_user"])
    )
    client.force_login(staff)
    page = client.get(reverse("admin:auth_user_changelist"))
    assert page.status_code == 200
    assert "reset_second_factor" not in page.text


def test_the_break_glass_command_resets_a_superuser(capsys):
    root = staff_user("root")
    enrolled(root)
    call_command("reset_staff_2fa", "root", "--reason", "INC-7", "--by", "root")
    assert not TOTPDevice.objects.filter(user=root).exists()
    assert "Removed 1 two-factor devices of root" in capsys.readouterr().out


def test_force_login_in_tests_is_a_verified_login(client):
    user = staff_user()
    client.force_login(user)
    persistent_id = client.session[DEVICE_ID_SESSION_KEY]
    assert TOTPDevice.objects.get(user=user).persistent_id == persistent_id


def test_the_code_helper_matches_django_otp():
    device = enrolled(staff_user())
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    assert totp_code(device) == f"{totp.token():06d}"
