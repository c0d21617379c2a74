"""When the password step succeeds, the session starts its clocks (staff/middleware.py)."""

import time

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

LOGGED_IN_AT = "staff_logged_in_at"
LAST_SEEN_AT = "staff_last_seen_at"
# The device that verified this session; set once the second factor passes.
VERIFIED_WITH = "staff_verified_with"


@receiver(user_logged_in, dispatch_uid="staff.session_clocks")
def start_session_clocks(sender, request, user, **kwargs):
    if request is None or not hasattr(request, "session"):
        return
    now = int(time.time())
    request.session[LOGGED_IN_AT] = now
    request.session[LAST_SEEN_AT] = now
