"""Reads that more than one caller needs: balances, statements, ledger invariants."""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from .models import Account, BalanceDelta, JournalEntry, Player, Posting
from .money import quantize_money

Kind = Account.Kind


@dataclass(frozen=True)
class WalletBalance:
    currency: str
    cash: Decimal
    bonus: Decimal
    held: Decimal

    @property
    def withdrawable(self) -> Decimal:
        # Bonus money becomes withdrawable only once converted to cash; held money is on
        # its way out already.
        return self.cash

    @property
    def total(self) -> Decimal:
        return self.cash + self.bonus + self.held


def player_balances(player: Player) -> list[WalletBalance]:
    amounts: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for currency, kind, balance in Account.objects.filter(owner=player).values_list(
        "currency_id", "kind", "balance"
    ):
        amounts[currency][kind] = quantize_money(balance, currency)
    zero = Decimal(0)
    return [
        WalletBalance(
            currency=currency,
            cash=by_kind.get(Kind.PLAYER_CASH, zero),
            bonus=by_kind.get(Kind.PLAYER_BONUS, zero),
            held=by_kind.get(Kind.PLAYER_HOLD, zero),
        )
        for currency, by_kind in sorted(amounts.items())
    ]


def player_postings(player: Player) -> QuerySet[Posting]:
    """The player's postings, newest first, each with its entry and balance after."""
    return (
        Posting.objects.filter(account__owner=player)
        .select_related("entry", "account")
        .order_by("-id")
    )


def account_balance(account: Account) -> Decimal:
    """The true balance, including postings not yet rolled up on a system account."""
    if not account.is_rolled_up:
        return account.balance
    pending = BalanceDelta.objects.filter(account=account).aggregate(s=Sum("amount"))["s"]
    return account.balance + (pending or 0)


def _stored(value) -> Decimal:
    """At the column's scale: exact on PostgreSQL; SQLite (the demo) sums in floating point."""
    return Decimal(str(value or 0)).quantize(Decimal("1e-8"))


@dataclass(frozen=True)
class LedgerProblem:
    kind: str
    subject: str
    expected: Decimal
    found: Decimal

    def __str__(self):
        return f"{self.kind}: {self.subject}: expected {self.expected}, found {self.found}"


def ledger_problems() -> list[LedgerProblem]:
    """Every way the ledger breaks its invariants: balances that are not the sum of their
    postings (counting pending roll-up deltas) and entries whose postings do not sum to zero
    per currency. An empty list means the books balance."""
    problems = []
    posted = dict(
        Posting.objects.values("account_id")
        .annotate(s=Sum("amount"))
        .values_list("account_id", "s")
    )
    pending = dict(
        BalanceDelta.objects.values("account_id")
        .annotate(s=Sum("amount"))
        .values_list("account_id", "s")
    )
    # A checked account never has pending deltas, so adding them for every account is right
    # for rolled-up ones and exposes a stray delta on a checked one.
    for account_id, balance in Account.objects.values_list("id", "balance"):
        expected = _stored(posted.get(account_id))
        found = _stored(balance) + _stored(pending.get(account_id))
        if found != expected:
            problems.append(LedgerProblem("balance", f"account {account_id}", expected, found))
    unbalanced = (
        Posting.objects.values("entry_id", "account__currency_id")
        .annotate(s=Sum("amount"))
        .filter(~Q(s=0))
        .values_list("entry_id", "account__currency_id", "s")
    )
    for entry_id, currency, total in unbalanced:
        if _stored(total) == 0:
            continue
        problems.append(
            LedgerProblem("entry", f"entry {entry_id} in {currency}", Decimal(0), total)
        )
    empty = JournalEntry.objects.filter(postings__isnull=True).values_list("id", flat=True)
    for entry_id in empty:
        problems.append(
            LedgerProblem("entry", f"entry {entry_id} has no postings", Decimal(0), Decimal(0))
        )
    return problems
