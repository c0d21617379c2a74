"""Compliance throughput: AML rules in batch over a generated ledger history, the latency
`assess_deposit` adds to a deposit, and sanctions screening speed against the full SDN list.

    createdb -h 127.0.0.1 -U postgres casino_bench_compliance
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/casino_bench_compliance \
        python manage.py migrate && python manage.py bench_compliance

The history is generated with set-based SQL (generate_series, one INSERT ... SELECT per
table): entries spread over the last 30 days, 15% deposits, 5% withdrawal requests, 55% bets,
25% wins; 1% of players share a card. The ledger is append-only, so the data stays: the
command runs only on a database whose name contains "bench" and holds no earlier run. It is
committed and vacuumed before measuring, because a planner looking at a million rows that
are not yet visible to all plans far slower than a production database ever does.
"""

import random
import statistics
import time
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from compliance import monitoring, screening, services
from compliance.models import Alert
from wallets.models import Account, Player
from wallets.services import system_account

FIRST = ["Anna", "Ben", "Clara", "David", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas",
         "Karim", "Lena", "Marco", "Nina", "Omar", "Paula", "Rafael", "Sara", "Tomas",
         "Yusuf"]  # fmt: skip
LAST = ["Borg", "Camilleri", "Dubois", "Eriksson", "Fischer", "Garcia", "Hansen", "Ivanov",
        "Jensen", "Keller", "Lopez", "Muller", "Novak", "Olsen", "Petrov", "Rossi", "Schmidt",
        "Vella", "Weber", "Zammit"]  # fmt: skip
COUNTRIES = ["MT", "GB", "DE", "SE", "FI", "IE", "NL", "AT", "DK", "NO",
             "PT", "ES", "IT", "PL", "CZ", "SK", "SI", "HR", "CA", "MM"]  # fmt: skip


def percentile(sorted_values, fraction):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


class Command(BaseCommand):
    help = "Benchmark AML batch rules, assess_deposit latency and sanctions screening."

    def add_arguments(self, parser):
        parser.add_argument("--players", type=int, default=50_000)
        parser.add_argument("--entries", type=int, default=1_000_000)
        parser.add_argument("--assess-calls", type=int, default=2000)
        parser.add_argument("--screen-names", type=int, default=2000)
        parser.add_argument("--chunk", type=int, default=1000, help="Players per batch query.")

    def handle(self, *args, **options):
        if connection.vendor != "postgresql":
            raise CommandError("Run the benchmark on PostgreSQL (set DATABASE_URL).")
        if "bench" not in connection.settings_dict["NAME"]:
            raise CommandError("The benchmark writes a large ledger: use a database named *bench*.")
        if Player.objects.filter(external_id__startswith="bench-").exists():
            raise CommandError("This database holds an earlier run: drop and recreate it.")
        self._run(options)

    def _say(self, text):
        self.stdout.write(text)
        self.stdout.flush()

    def _run(self, options):
        players, entries = options["players"], options["entries"]
        started = time.perf_counter()
        with transaction.atomic():
            self._generate(players, entries)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE wallets_player, wallets_account, wallets_journalentry")
            cursor.execute("VACUUM ANALYZE wallets_posting, compliance_kycprofile")
        self._say(
            f"Generated {players:,} players and {entries:,} entries "
            f"({2 * entries:,} postings) in {time.perf_counter() - started:.1f} s."
        )

        player_ids = monitoring.active_player_ids()
        rule_count = len(monitoring.enabled_rules())
        started = time.perf_counter()
        monitoring.monitor_active_players(chunk_size=options["chunk"], player_ids=player_ids)
        elapsed = time.perf_counter() - started
        alerts = Alert.objects.filter(player__external_id__startswith="bench-").count()
        self._say(
            f"AML batch: {len(player_ids):,} active players x {rule_count} rules in "
            f"{elapsed:.1f} s = {len(player_ids) * rule_count / elapsed:,.0f} rule evaluations/s, "
            f"{len(player_ids) / elapsed:,.0f} players/s, {entries / elapsed:,.0f} entries/s "
            f"({alerts:,} alerts raised)."
        )

        # The daily batch in steady state: the same history again, every hit already known.
        started = time.perf_counter()
        monitoring.monitor_active_players(chunk_size=options["chunk"], player_ids=player_ids)
        elapsed = time.perf_counter() - started
        self._say(
            f"AML batch re-run (hits already raised): {len(player_ids):,} players in "
            f"{elapsed:.1f} s = {len(player_ids) * rule_count / elapsed:,.0f} rule evaluations/s, "
            f"{entries / elapsed:,.0f} entries/s."
        )

        self._bench_assess(options["assess_calls"])
        self._bench_screening(options["screen_names"])

    def _generate(self, players: int, entries: int):
        clearing = system_account(kind=Account.Kind.PROVIDER_CLEARING, currency="EUR",
                                  system_code="bench-psp")  # fmt: skip
        house = system_account(kind=Account.Kind.GAME_HOUSE, currency="EUR",
                               system_code="bench-game")  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO wallets_player
                    (external_id, email, first_name, last_name, date_of_birth, country, status,
                     created_at)
                SELECT 'bench-' || g, 'bench' || g || '@example.com',
                       (%(first)s::text[])[1 + g %% 20], (%(last)s::text[])[1 + (g / 20) %% 20],
                       date '1970-01-01' + (g %% 12000), (%(countries)s::text[])[1 + g %% 20],
                       'active', now() - interval '400 days'
                FROM generate_series(1, %(players)s) g
                """,
                {"first": FIRST, "last": LAST, "countries": COUNTRIES, "players": players},
            )
            cursor.execute(
                """
                INSERT INTO wallets_account
                    (owner_id, currency_id, kind, system_code, balance, allows_negative, created_at)
                SELECT p.id, 'EUR', k.kind, '', 0, false, now()
                FROM wallets_player p CROSS JOIN (VALUES ('player_cash'), ('player_hold')) k(kind)
                WHERE p.external_id LIKE 'bench-%'
                """
            )
            cursor.execute(
                """
                INSERT INTO compliance_kycprofile (player_id, level, updated_at)
                SELECT id, 'verified', now() FROM wallets_player WHERE external_id LIKE 'bench-%'
                """
            )
            cursor.execute(
                """
                CREATE TEMP TABLE bench_wallet ON COMMIT DROP AS
                SELECT row_number() OVER (ORDER BY p.id) AS n, p.id AS player_id,
                       cash.id AS cash_id, hold.id AS hold_id
                FROM wallets_player p
                JOIN wallets_account cash ON cash.owner_id = p.id AND cash.kind = 'player_cash'
                JOIN wallets_account hold ON hold.owner_id = p.id AND hold.kind = 'player_hold'
                WHERE p.external_id LIKE 'bench-%'
                """
            )
            cursor.execute(
                """
                CREATE TEMP TABLE bench_plan ON COMMIT DROP AS
                SELECT g AS n, 1 + floor(random() * %(players)s)::int AS wallet_n,
                       CASE WHEN r < 0.15 THEN 'deposit' WHEN r < 0.20 THEN 'withdrawal_hold'
                            WHEN r < 0.75 THEN 'bet' ELSE 'win' END AS kind,
                       now() - random() * interval '30 days' AS at,
                       round((1 + random() * CASE WHEN r < 0.20 THEN 60 ELSE 10 END)::numeric, 2)
                           AS amount
                FROM (SELECT g, random() AS r FROM generate_series(1, %(entries)s) g) s
                """,
                {"players": players, "entries": entries},
            )
            cursor.execute(
                """
                INSERT INTO wallets_journalentry
                    (kind, idempotency_key, request_hash, external_reference, metadata, created_at)
                SELECT b.kind, 'bench-' || b.n, '', '',
                       CASE WHEN b.kind IN ('deposit', 'withdrawal_hold') THEN
                           jsonb_build_object(
                               'instrument_fingerprint',
                               CASE WHEN b.wallet_n % 100 = 0
                                    THEN 'card:shared-' || (b.wallet_n / 1000)
                                    ELSE 'card:' || b.wallet_n END,
                               'instrument_type', 'card')
                       ELSE '{}'::jsonb END,
                       b.at
                FROM bench_plan b ORDER BY b.at
                """
            )
            # Player leg, then the other side: clearing, game house or the withdrawal hold.
            cursor.execute(
                """
                INSERT INTO wallets_posting (entry_id, account_id, amount)
                SELECT e.id, w.cash_id,
                       CASE WHEN b.kind IN ('deposit', 'win') THEN b.amount ELSE -b.amount END
                FROM bench_plan b
                JOIN bench_wallet w ON w.n = b.wallet_n
                JOIN wallets_journalentry e ON e.idempotency_key = 'bench-' || b.n
                UNION ALL
                SELECT e.id,
                       CASE b.kind WHEN 'deposit' THEN %(clearing)s
                                   WHEN 'withdrawal_hold' THEN w.hold_id ELSE %(house)s END,
                       CASE WHEN b.kind IN ('deposit', 'win') THEN -b.amount ELSE b.amount END
                FROM bench_plan b
                JOIN bench_wallet w ON w.n = b.wallet_n
                JOIN wallets_journalentry e ON e.idempotency_key = 'bench-' || b.n
                """,
                {"clearing": clearing.pk, "house": house.pk},
            )

    def _bench_assess(self, calls: int):
        rng = random.Random(7)
        # Residents of GB depositing from a GB address: the common case, no location alert.
        ids = list(
            Player.objects.filter(external_id__startswith="bench-", country="GB").values_list(
                "pk", flat=True
            )
        )
        players = list(Player.objects.filter(pk__in=rng.sample(ids, min(calls, len(ids)))))
        latencies, outcomes = [], {}
        for index in range(calls):
            player = players[index % len(players)]
            amount = Decimal(rng.randint(10, 500))
            started = time.perf_counter()
            decision = services.assess_deposit(
                player=player, amount=amount, currency="EUR", method="card", ip="81.2.69.142"
            )
            latencies.append(time.perf_counter() - started)
            outcomes[decision.outcome] = outcomes.get(decision.outcome, 0) + 1
        latencies.sort()
        self._say(
            f"assess_deposit: {calls:,} calls, p50 {percentile(latencies, 0.5) * 1000:.2f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.2f} ms, "
            f"mean {statistics.fmean(latencies) * 1000:.2f} ms (outcomes {outcomes})."
        )

    def _bench_screening(self, names: int):
        with transaction.atomic():
            record = services.import_sdn(force=True, rescreen=False)
        rng = random.Random(11)
        queries = [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(names)]
        screening.match_name("warm up the index")
        started = time.perf_counter()
        hits = sum(1 for query in queries if screening.match_name(query))
        elapsed = time.perf_counter() - started
        self._say(
            f"Screening: {names:,} names against {record.name_count:,} listed names "
            f"({len(screening._Index.names):,} of individuals) in {elapsed:.2f} s = "
            f"{names / elapsed:,.0f} names/s ({hits} hits)."
        )
