from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from payments import services


class Command(BaseCommand):
    help = "Create the four sandbox providers (card, e-wallet, open banking, crypto) and methods."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default=settings.PAYMENTS_PUBLIC_BASE_URL,
            help="Where this server listens (the sandbox is mounted on it).",
        )

    def handle(self, *args, **options):
        if not settings.SANDBOX_ENABLED:
            raise CommandError("SANDBOX_ENABLED is off: the sandbox URLs are not mounted.")
        for provider in services.ensure_sandbox_providers(base_url=options["base_url"]):
            self.stdout.write(f"{provider.code}: {provider.api_base_url}")
