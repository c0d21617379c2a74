"""Demo data: an operator login, a dozen players with EUR, USD and BTC wallets and history.

Idempotent: running it again reuses what exists (every movement has a fixed key).
"""

import os
import random
import secrets
from datetime import date
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from wallets import services

PLAYERS = [
    ("demo-001", "Anna", "Schmidt", "DE"),
    ("demo-002", "Luca", "Rossi", "IT"),
    ("demo-003", "Maria", "Borg", "MT"),
    ("demo-004", "Jonas", "Berg", "SE"),
    ("demo-005", "Emma", "Dubois", "FR"),
    ("demo-006", "Mateo", "García", "ES"),
    ("demo-007", "Sofia", "Nieminen", "FI"),
    ("demo-008", "Liam", "Murphy", "IE"),
    ("demo-009", "Olivia", "Jansen", "NL"),
    ("demo-010", "Noah", "Novak", "CZ"),
    ("demo-011", "Mia", "Kowalski", "PL"),
    ("demo-012", "Lucas", "Costa", "PT"),
]


class Command(BaseCommand):
    help = "Load demo players, wallets and history, and print the operator's login."

    def handle(self, *args, **options):
        self._operator()
        rng = random.Random(7)
        for index, (external_id, first, last, country) in enumerate(PLAYERS):
            player = services.register_player(
                external_id=external_id,
                email=f"{first.lower()}.{last.lower()}@example.com",
                first_name=first,
                last_name=last,
                date_of_birth=date(1970 + index * 3, 1 + index, 1 + index),
                country=country,
            )
            self._history(player, rng)
        services.roll_up_system_balances()
        self.stdout.write(self.style.SUCCESS(f"Demo data ready: {len(PLAYERS)} players."))

    def _operator(self):
        User = get_user_model()
        password = os.environ.get("DEMO_OPERATOR_PASSWORD") or secrets.token_urlsafe(9)
        user, _ = User.objects.get_or_create(
            username="operator", defaults={"email": "ops@example.com"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"Operator login: username 'operator', password '{password}'")
        self.stdout.write(
            "First login asks you to set up an authenticator app (QR code or key on the page); "
            "see docs/staff-auth.md."
        )

    def _history(self, player, rng):
        key = player.external_id
        for currency, deposit, stake in (
            ("EUR", Decimal("250.00"), Decimal("5.00")),
            ("USD", Decimal("120.00"), Decimal("2.50")),
            ("BTC", Decimal("0.01250000"), Decimal("0.00010000")),
        ):
            services.credit_deposit(
                player=player,
                currency=currency,
                amount=deposit,
                provider_code="sandbox-card",
                idempotency_key=f"demo-{key}-{currency}-deposit",
            )
            for round_no in range(6):
                services.debit_bet(
                    player=player,
                    currency=currency,
                    amount=stake,
                    game_code="demo-slots",
                    idempotency_key=f"demo-{key}-{currency}-bet-{round_no}",
                    external_reference=f"round-{round_no}",
                )
                win = stake * rng.choice([0, 0, 0, 1, 2, 5])
                if win:
                    services.credit_win(
                        player=player,
                        currency=currency,
                        amount=win,
                        game_code="demo-slots",
                        idempotency_key=f"demo-{key}-{currency}-win-{round_no}",
                        external_reference=f"round-{round_no}",
                    )
        services.hold_withdrawal(
            player=player,
            currency="EUR",
            amount=Decimal("50.00"),
            idempotency_key=f"demo-{key}-hold",
        )
        services.settle_withdrawal(
            player=player,
            currency="EUR",
            amount=Decimal("50.00"),
            provider_code="sandbox-card",
            idempotency_key=f"demo-{key}-settle",
        )
