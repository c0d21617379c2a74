"""Signals through which higher apps take part in wallet decisions without wallets importing
them (the arrows go reconciliation → payments → compliance → wallets).

`bet_requested` is sent before a bet moves money, with `player`, `currency` and `amount`.
A receiver refuses the bet by raising a `wallets.errors.DomainError` (compliance raises one for
self-excluded players); the error reaches the caller unchanged and nothing is written.
"""

from django.dispatch import Signal

bet_requested = Signal()
