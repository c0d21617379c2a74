"""Game providers and signed game-wallet calls for the tests."""

import json
import time
import uuid
from dataclasses import dataclass

from django.test import Client

from wallets import game_services
from wallets.models import GameProvider, Player

BASE = "/api/v1/game-wallet/"


@dataclass
class SignedProvider:
    """A provider and its clear secret, able to make signed calls like a real game server."""

    provider: GameProvider
    secret: str
    client: Client

    def call(self, endpoint: str, body: dict, *, timestamp=None, secret=None, key_id=None):
        raw = json.dumps(body).encode()
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = game_services.signature_for(
            secret=secret or self.secret, timestamp=ts, body=raw
        )
        return self.client.post(
            BASE + endpoint,
            data=raw,
            content_type="application/json",
            headers={
                "X-Game-Key": key_id or self.provider.key_id,
                "X-Game-Timestamp": ts,
                "X-Game-Signature": signature,
            },
        )

    def session(self, player: Player, currency: str = "EUR") -> str:
        return game_services.issue_game_session(
            player=player, provider=self.provider, currency=currency
        )

    def bet(self, player: Player, amount: str, *, tx=None, round_id=None, currency="EUR", **extra):
        body = {
            "player_id": player.external_id,
            "currency": currency,
            "amount": amount,
            "transaction_id": tx or new_id("bet"),
            "round_id": round_id or new_id("round"),
        }
        if "session_token" not in extra:
            body["session_token"] = self.session(player, currency)
        return self.call("bet", body | extra)

    def win(self, player: Player, amount: str, *, round_id, tx=None, currency="EUR", **extra):
        body = {
            "player_id": player.external_id,
            "currency": currency,
            "amount": amount,
            "transaction_id": tx or new_id("win"),
            "round_id": round_id,
        }
        return self.call("win", body | extra)

    def rollback(self, player: Player, *, bet_tx, round_id, tx=None, currency="EUR"):
        body = {
            "player_id": player.external_id,
            "currency": currency,
            "transaction_id": tx or new_id("rb"),
            "round_id": round_id,
            "bet_transaction_id": bet_tx,
        }
        return self.call("rollback", body)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def make_provider(code=None, currencies=("EUR", "GBP"), client=None) -> SignedProvider:
    provider, secret = game_services.create_provider(
        name="Test Studio", code=code or new_id("studio"), currencies=list(currencies)
    )
    return SignedProvider(provider=provider, secret=secret, client=client or Client())
