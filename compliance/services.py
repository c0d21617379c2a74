"""Compliance decisions called by payments at payment time.

Contract (payments depends on it; keep the signatures):
- `assess_deposit(*, player, amount, currency, method, ip=None) -> Decision`
- `assess_withdrawal(*, player, amount, currency, method, ip=None) -> Decision`
A Decision is allow, refuse (with a stable reason code the frontend can show) or review
(the withdrawal goes to in_review with the reasons attached).

Until the compliance issue lands these allow everything.
"""

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class Decision:
    ALLOW = "allow"
    REFUSE = "refuse"
    REVIEW = "review"

    outcome: str
    reasons: list[str] = field(default_factory=list)

    @property
    def is_allowed(self) -> bool:
        return self.outcome == self.ALLOW


def assess_deposit(
    *, player, amount: Decimal, currency: str, method: str, ip: str | None = None
) -> Decision:
    return Decision(Decision.ALLOW)


def assess_withdrawal(
    *, player, amount: Decimal, currency: str, method: str, ip: str | None = None
) -> Decision:
    return Decision(Decision.ALLOW)
