from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from compliance.errors import SanctionsListUnavailable
from compliance.screening import data_dir
from compliance.services import import_sdn


class Command(BaseCommand):
    help = (
        "Import the OFAC SDN list (sdn.csv, alt.csv, add.csv) with aliases; when it changed, "
        "every player is screened again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dir", type=Path, default=None, help="Default: OFAC_DATA_DIR.")
        parser.add_argument("--force", action="store_true", help="Import even if unchanged.")
        parser.add_argument(
            "--no-rescreen",
            action="store_true",
            help="Do not re-screen every player now (run the rescreen_all_players task later).",
        )

    def handle(self, *args, **options):
        directory = options["dir"] or data_dir()
        try:
            record = import_sdn(
                directory=directory, force=options["force"], rescreen=not options["no_rescreen"]
            )
        except SanctionsListUnavailable as error:
            raise CommandError(error.message) from None
        if record is None:
            self.stdout.write(f"{directory}: unchanged since the last import, nothing to do.")
            return
        self.stdout.write(
            f"Imported {record.entity_count} entries and {record.name_count} names "
            f"(aliases included) from {directory}."
        )
