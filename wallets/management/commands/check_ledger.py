from django.core.management.base import BaseCommand, CommandError

from wallets.selectors import ledger_problems


class Command(BaseCommand):
    help = (
        "Verify that every account balance equals the sum of its postings and every entry sums "
        "to zero per currency. Prints each mismatch; exits non-zero if there is any."
    )

    def handle(self, *args, **options):
        problems = ledger_problems()
        for problem in problems:
            self.stderr.write(str(problem))
        if problems:
            raise CommandError(f"{len(problems)} ledger problem(s) found.")
        self.stdout.write(self.style.SUCCESS("Ledger balanced: no problems found."))
