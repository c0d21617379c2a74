"""Staff authentication for the operator console: the second factor (TOTP and recovery codes,
django-otp), login lockout (django-axes), session limits and the admin site that needs them.

Wiring only, like config/: it sits above every app and no app imports it. See
docs/staff-auth.md.
"""
