"""Every write of the reconciliation app. One module per stage; callers import from here."""

from .importing import load_report, receive_report
from .matching import match_settlements, start_run

__all__ = ["load_report", "match_settlements", "receive_report", "start_run"]
