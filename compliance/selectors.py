"""Reads more than one part of compliance needs. Nothing here writes.

The KYC level and risk band a decision or a score starts from, the exclusion in force, what a
player deposited (for the KYC cap, the deposit limits and the risk score), what blocks their
withdrawals, and their ledger activity in the shape the AML rules read (`rules.Activity`),
loaded for many players in one query so the monitoring batch and the payment-time
minimal-play check share it.
"""

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from django.db.models import Max, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from wallets import fingerprints
from wallets.models import Account, JournalEntry, Player, Posting
from wallets.money import quantize_money

from . import rules
from .models import (
    Alert,
    AmlRule,
    KycLevel,
    KycProfile,
    RiskAssessment,
    SelfExclusion,
    WithdrawalBlock,
)

Kind = AmlRule.Kind
EntryKind = JournalEntry.Kind


# Entries the rules read, and which leg carries the amount the player moved.
ACTIVITY_LEG = {
    EntryKind.DEPOSIT: Account.Kind.PLAYER_CASH,
    EntryKind.WITHDRAWAL_HOLD: Account.Kind.PLAYER_CASH,
    EntryKind.WITHDRAWAL_SETTLE: Account.Kind.PLAYER_HOLD,
    EntryKind.WITHDRAWAL_RELEASE: Account.Kind.PLAYER_CASH,
    EntryKind.BET: Account.Kind.PLAYER_CASH,
    EntryKind.BET_REVERSAL: Account.Kind.PLAYER_CASH,
    EntryKind.WIN: Account.Kind.PLAYER_CASH,
}


def kyc_level(player: Player) -> str:
    level = KycProfile.objects.filter(player=player).values_list("level", flat=True).first()
    return level or KycLevel.NONE


def risk_level(player: Player) -> str:
    level = RiskAssessment.objects.filter(player=player).values_list("level", flat=True).first()
    return level or RiskAssessment.Level.LOW


def active_self_exclusion(player: Player, now=None) -> SelfExclusion | None:
    """The exclusion in force, the self-exclusion before a time-out if both are."""
    now = now or timezone.now()
    return (
        SelfExclusion.objects.filter(player=player, starts_at__lte=now)
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now))
        .order_by("kind")  # "self_exclusion" sorts before "timeout": the stronger one first
        .first()
    )


def deposited(player: Player, *, currency: str | None = None, since=None) -> dict[str, Decimal]:
    """Deposits credited to the player's cash per currency (optionally since `since`)."""
    cash = Account.objects.filter(owner=player, kind=Account.Kind.PLAYER_CASH)
    if currency:
        cash = cash.filter(currency_id=currency)
    accounts = dict(cash.values_list("pk", "currency_id"))
    # Filtering postings by account id (not by a join on the owner) lets PostgreSQL walk the
    # (account, id) index instead of scanning every posting.
    postings = Posting.objects.filter(
        account_id__in=list(accounts), entry__kind=JournalEntry.Kind.DEPOSIT
    )
    if since is not None:
        postings = postings.filter(entry__created_at__gte=since)
    rows = postings.values("account_id").annotate(total=Sum("amount"))
    return {accounts[r["account_id"]]: r["total"] for r in rows}


def deposited_eur(player: Player, since=None) -> Decimal:
    return sum(
        (rules.to_eur(total, cur) for cur, total in deposited(player, since=since).items()),
        Decimal(0),
    )


def withdrawals_blocked_by(player: Player) -> list[str]:
    """Why the player's withdrawals are blocked (internal reasons), empty if they are not."""
    causes = []
    if WithdrawalBlock.objects.filter(player=player, lifted_at__isnull=True).exists():
        causes.append("withdrawal_block")
    if Alert.objects.filter(
        player=player,
        rule__kind=Kind.SANCTIONS_MATCH,
        status__in=[Alert.Status.OPEN, Alert.Status.CONFIRMED],
    ).exists():
        causes.append("sanctions_match")
    return causes


def load_activity(player_ids, *, now, span: timedelta) -> dict[int, rules.Activity]:
    """Each player's movements since `now - span` (oldest first), one query for them all,
    plus the time of their last movement before that (for dormancy)."""
    since = now - span
    players = dict(Player.objects.filter(pk__in=player_ids).values_list("pk", "country"))
    created = dict(Player.objects.filter(pk__in=player_ids).values_list("pk", "created_at"))
    rows = (
        Posting.objects.filter(
            account__owner_id__in=player_ids,
            account__kind__in=[Account.Kind.PLAYER_CASH, Account.Kind.PLAYER_HOLD],
            entry__kind__in=list(ACTIVITY_LEG),
            entry__created_at__gte=since,
            entry__created_at__lte=now,
        )
        .annotate(
            instrument=KeyTextTransform("instrument_fingerprint", "entry__metadata"),
            instrument_type=KeyTextTransform("instrument_type", "entry__metadata"),
        )
        .values_list(
            "entry_id",
            "entry__kind",
            "entry__created_at",
            "account__owner_id",
            "account__kind",
            "account__currency_id",
            "amount",
            "instrument",
            "instrument_type",
        )
        .order_by("entry__created_at", "entry_id")
    )
    movements: dict[int, list[rules.Movement]] = defaultdict(list)
    for entry_id, kind, at, owner, account_kind, currency, amount, fp, fp_type in rows:
        if ACTIVITY_LEG[kind] != account_kind:
            continue
        movements[owner].append(
            rules.Movement(
                entry_id=entry_id,
                kind=kind,
                at=at,
                currency=currency,
                amount=quantize_money(abs(Decimal(amount)), currency),
                # An entry keeps the fingerprint version it was written with (the ledger is
                # append-only): read on the current key version, it meets its newer twins.
                instrument=fingerprints.upgrade(fp) if fp else "",
                instrument_type=fp_type or "",
            )
        )
    before = dict(
        Posting.objects.filter(
            account__owner_id__in=player_ids,
            account__kind=Account.Kind.PLAYER_CASH,
            entry__created_at__lt=since,
        )
        .values("account__owner_id")
        .annotate(last=Max("entry__created_at"))
        .values_list("account__owner_id", "last")
    )
    return {
        pid: rules.Activity(
            player_id=pid,
            country=country or "",
            player_created_at=created[pid],
            movements=movements.get(pid, []),
            last_movement_before=before.get(pid),
        )
        for pid, country in players.items()
    }
