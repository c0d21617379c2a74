"""Rewrite stored instrument fingerprints to the current key version after a rotation of
INSTRUMENT_FINGERPRINT_KEYS (docs/security.md):

1. append the new key as the next version ("N+1:<key>"), keeping every older one; restart;
2. `manage.py refingerprint_instruments` upgrades deposits' payer fingerprints and
   compliance's instrument index and shared-instrument alerts (each version wraps the one
   before, so no identifier is needed; payout instruments compute theirs from the identifier);
3. `manage.py refingerprint_instruments --check` exits 0 once nothing stored is older.

Ledger entries keep the version they were written with (append-only): compliance upgrades
them as it reads. Idempotent: a second run changes nothing.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from compliance import services as compliance
from payments.models import Deposit
from wallets import fingerprints


class Command(BaseCommand):
    help = "Upgrade stored instrument fingerprints to the current fingerprint key version."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="store_true",
            help="Change nothing; exit 1 if any stored fingerprint is of an older version.",
        )

    def handle(self, *args, check=False, **options):
        version = fingerprints.current_version()
        stored = Deposit.objects.exclude(payer_instrument_fingerprint="").values_list(
            "payer_instrument_fingerprint", flat=True
        )
        stale = sorted({fp for fp in stored.distinct() if not fingerprints.is_current(fp)})
        if check:
            counts = {
                "deposit_fingerprints": len(stale),
                **compliance.stale_instrument_fingerprints(),
            }
            self.stdout.write(f"key v{version}; stale: {counts}")
            if any(counts.values()):
                raise CommandError("Some stored fingerprints are of an older key version.")
            return
        with transaction.atomic():
            for old in stale:
                Deposit.objects.filter(payer_instrument_fingerprint=old).update(
                    payer_instrument_fingerprint=fingerprints.upgrade(old)
                )
        changed = compliance.rekey_instrument_fingerprints()
        self.stdout.write(
            f"key v{version}: {len(stale)} deposit fingerprint(s) upgraded; compliance {changed}"
        )
