"""The AML rules engine: load players' ledger activity, run the enabled rules, raise alerts.

Three ways in, one engine:
- right after a money movement: a `post_save` receiver on `wallets.JournalEntry` enqueues
  `tasks.monitor_entry` on commit (deposits and withdrawals; bets only feed the rules);
- `sweep_ledger` (beat, every few minutes) reads entries past a cursor, so an enqueue lost
  between commit and broker is caught up;
- `monitor_active_players` (beat, daily; and the benchmark) re-runs every player active in
  the rules' look-back.

Rules run per player over an in-memory `rules.Activity`, loaded for a chunk of players with
one query (`selectors.load_activity`), so the batch reads the ledger once instead of once
per rule.
"""

from collections import defaultdict
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from wallets.models import Account, JournalEntry, Player, Posting

from . import rules
from .models import Alert, AmlRule, InstrumentUse, MonitoringCursor
from .selectors import load_activity
from .services import raise_alert, recompute_risk

EntryKind = JournalEntry.Kind
# Entries whose commit triggers monitoring of their player.
MONITORED_KINDS = (EntryKind.DEPOSIT, EntryKind.WITHDRAWAL_HOLD, EntryKind.WITHDRAWAL_SETTLE)
# A shared card seen in the last year still links the players.
INSTRUMENT_LOOKBACK = timedelta(days=365)
# The sweep leaves the newest entries to the per-entry tasks: an id is taken before its
# transaction commits, so a lower id can still appear after a higher one for a moment.
SWEEP_LAG = timedelta(minutes=1)


def enabled_rules() -> list[tuple[AmlRule, dict]]:
    return [
        (rule, rules.clean_parameters(rule.kind, rule.parameters))
        for rule in AmlRule.objects.filter(is_enabled=True).exclude(kind__in=AmlRule.EVENT_KINDS)
    ]


def _index_instruments(activities: dict[int, rules.Activity]) -> None:
    """Record instrument use seen in the ledger, then tell each player who else used theirs."""
    uses = [
        InstrumentUse(
            fingerprint=m.instrument[:200],
            instrument_type=m.instrument_type[:32],
            player_id=a.player_id,
            entry_id=m.entry_id,
            used_at=m.at,
        )
        for a in activities.values()
        for m in a.movements
        if m.instrument
    ]
    if not uses:
        return
    InstrumentUse.objects.bulk_create(uses, ignore_conflicts=True, batch_size=1000)
    fingerprints = {u.fingerprint for u in uses}
    holders: dict[str, set[int]] = defaultdict(set)
    for fingerprint, player_id in (
        InstrumentUse.objects.filter(
            fingerprint__in=fingerprints, used_at__gte=timezone.now() - INSTRUMENT_LOOKBACK
        )
        .values_list("fingerprint", "player_id")
        .distinct()
    ):
        holders[fingerprint].add(player_id)
    for activity in activities.values():
        activity.instrument_players = {
            m.instrument: holders[m.instrument] for m in activity.movements if m.instrument
        }


def evaluate_players(player_ids, *, now=None) -> list[Alert]:
    """Run every enabled ledger rule for these players; return the alerts newly raised."""
    now = now or timezone.now()
    active_rules = enabled_rules()
    if not active_rules or not player_ids:
        return []
    span = rules.lookback([(r.kind, p) for r, p in active_rules])
    activities = load_activity(list(player_ids), now=now, span=span)
    _index_instruments(activities)
    raised: list[Alert] = []
    players = Player.objects.in_bulk([pid for pid, a in activities.items() if a.movements])
    # One transaction for the chunk: a batch of hundreds of players commits once, not once
    # per alert; a failure rolls the chunk back and the task's retry raises it again.
    with transaction.atomic():
        _raise_hits(activities, players, active_rules, now, raised)
        for pid in {a.player_id for a in raised}:
            recompute_risk(player=players[pid])
    return raised


def _raise_hits(activities, players, active_rules, now, raised: list) -> None:
    # What these players were already alerted for: a re-run (the daily batch, a sweep after
    # the per-entry task) finds mostly known hits, and skipping them here saves a round trip
    # each. `raise_alert` still refuses duplicates itself, so a race costs nothing.
    known: set[tuple[int, int, str]] = set()
    latest: dict[tuple[int, int], object] = {}
    for rule_id, player_id, key, created_at in Alert.objects.filter(
        player_id__in=list(players)
    ).values_list("rule_id", "player_id", "dedup_key", "created_at"):
        known.add((rule_id, player_id, key))
        previous = latest.get((rule_id, player_id))
        if previous is None or created_at > previous:
            latest[(rule_id, player_id)] = created_at
    for pid, activity in activities.items():
        if not activity.movements:
            continue
        for rule, params in active_rules:
            for hit in rules.CHECKS[rule.kind](params, activity, now):
                if (rule.pk, pid, hit.dedup_key[:200]) in known:
                    continue
                last = latest.get((rule.pk, pid))
                if hit.window is not None and last is not None and last >= now - hit.window:
                    continue
                alert = raise_alert(
                    rule=rule,
                    player=players[pid],
                    dedup_key=hit.dedup_key,
                    details=hit.details,
                    entry_ids=hit.entry_ids,
                    window=hit.window,
                )
                if alert is not None:
                    raised.append(alert)
                    known.add((rule.pk, pid, alert.dedup_key))
                    latest[(rule.pk, pid)] = alert.created_at


def players_of_entries(entry_ids) -> list[int]:
    return list(
        Posting.objects.filter(entry_id__in=entry_ids, account__owner__isnull=False)
        .values_list("account__owner_id", flat=True)
        .distinct()
    )


def monitor_entry(*, entry_id: int) -> list[Alert]:
    """Run the rules for the players of one committed entry (the per-movement task)."""
    return evaluate_players(players_of_entries([entry_id]))


def sweep_ledger(*, batch_size: int = 5000, name: str = "ledger") -> int:
    """Monitor the players of entries past the cursor; return how many entries were read.

    The cursor row is locked for the sweep, so two beat runs never read the same batch.
    """
    MonitoringCursor.objects.get_or_create(name=name)
    with transaction.atomic():
        cursor = MonitoringCursor.objects.select_for_update(skip_locked=True).filter(name=name)
        cursor = cursor.first()
        if cursor is None:
            return 0
        entry_ids = list(
            JournalEntry.objects.filter(
                pk__gt=cursor.last_entry_id,
                created_at__lt=timezone.now() - SWEEP_LAG,
            )
            .order_by("pk")
            .values_list("pk", "kind")[:batch_size]
        )
        if not entry_ids:
            return 0
        monitored = [pk for pk, kind in entry_ids if kind in MONITORED_KINDS]
        player_ids = players_of_entries(monitored)
        for start in range(0, len(player_ids), 500):
            evaluate_players(player_ids[start : start + 500])
        cursor.last_entry_id = entry_ids[-1][0]
        cursor.save(update_fields=["last_entry_id", "updated_at"])
    return len(entry_ids)


def active_player_ids(*, now=None) -> list[int]:
    now = now or timezone.now()
    span = rules.lookback([(r.kind, p) for r, p in enabled_rules()])
    return list(
        Posting.objects.filter(
            account__owner__isnull=False,
            account__kind=Account.Kind.PLAYER_CASH,
            entry__created_at__gte=now - span,
            entry__kind__in=MONITORED_KINDS,
        )
        .values_list("account__owner_id", flat=True)
        .distinct()
        .order_by("account__owner_id")
    )


def monitor_active_players(*, chunk_size: int = 500, now=None, player_ids=None) -> int:
    """Run the rules for every player with money movements in the look-back (daily batch);
    return how many players were evaluated."""
    now = now or timezone.now()
    player_ids = active_player_ids(now=now) if player_ids is None else list(player_ids)
    for start in range(0, len(player_ids), chunk_size):
        evaluate_players(player_ids[start : start + chunk_size], now=now)
    return len(player_ids)
