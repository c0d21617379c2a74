"""Demo only: the demo players (`demo-*`) are KYC-verified by the operator, so the cashier
page can take their deposits and withdrawals; compliance still applies every other check
(a player resident in a blocked country is refused, limits and self-exclusion apply)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from compliance import services
from compliance.models import KycLevel
from wallets.models import Player


class Command(BaseCommand):
    help = "Mark the demo players as KYC-verified (run after load_demo)."

    def handle(self, *args, **options):
        operator = get_user_model().objects.filter(username="operator").first()
        if operator is None:
            raise CommandError("Run load_demo first: it creates the operator.")
        players = Player.objects.filter(external_id__startswith="demo-")
        for player in players:
            services.set_kyc_level(
                player=player,
                level=KycLevel.VERIFIED,
                actor=operator,
                reason="Demo player: documents checked outside the platform.",
            )
        self.stdout.write(f"{players.count()} demo players KYC-verified.")
