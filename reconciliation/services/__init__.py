"""Every write of the reconciliation app. One module per stage; callers import from here."""

from .importing import load_report, receive_report

__all__ = ["load_report", "receive_report"]
