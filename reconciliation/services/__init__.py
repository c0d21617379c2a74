"""Every write of the reconciliation app. One module per stage; callers import from here."""

from .breaks import (
    approve_write_off,
    investigate_break,
    reject_write_off,
    request_write_off,
    resolve_break,
)
from .importing import load_report, receive_report
from .integrity import acknowledge_alert, clearing_comparison, run_integrity_check
from .matching import match_settlements, start_run
from .settling import settle

__all__ = [
    "acknowledge_alert",
    "approve_write_off",
    "clearing_comparison",
    "investigate_break",
    "load_report",
    "match_settlements",
    "receive_report",
    "reject_write_off",
    "request_write_off",
    "resolve_break",
    "run_integrity_check",
    "settle",
    "start_run",
]
