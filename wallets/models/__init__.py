"""Models of the wallets app, one module per area; import them from here (`wallets.models`)."""

from .bonuses import Bonus
from .games import GameProvider, GameRound, GameTransaction
from .ledger import (
    MONEY,
    Account,
    BalanceDelta,
    Currency,
    JournalEntry,
    Player,
    PlayerStatusChange,
    Posting,
)

__all__ = [
    "MONEY",
    "Account",
    "BalanceDelta",
    "Bonus",
    "Currency",
    "GameProvider",
    "GameRound",
    "GameTransaction",
    "JournalEntry",
    "Player",
    "PlayerStatusChange",
    "Posting",
]
