"""Break glass: reset a staff member's second factor from the shell, for when no superuser can
log in to do it in the console (the last superuser lost their phone and recovery codes)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from staff import services


class Command(BaseCommand):
    help = "Delete a user's authenticator and recovery codes; they enrol again at next login."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--reason", required=True, help="recorded in the user's history")
        parser.add_argument(
            "--by",
            required=True,
            help="username of the superuser who asked for the reset (recorded)",
        )

    def handle(self, *args, username, reason, by, **options):
        users = get_user_model().objects
        try:
            user = users.get_by_natural_key(username)
            actor = users.get_by_natural_key(by)
        except users.model.DoesNotExist as missing:
            raise CommandError(f"No such user: {missing}") from missing
        if not actor.is_superuser:
            raise CommandError(f"{by} is not a superuser.")
        removed = services.reset_second_factor(user=user, by=actor, reason=reason)
        self.stdout.write(
            f"Removed {removed} two-factor devices of {username}. At the next login the console "
            "asks them to enrol an authenticator app. A lockout, if any, is cleared with "
            f"`manage.py axes_reset_username {username}`."
        )
