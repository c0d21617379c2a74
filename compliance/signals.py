"""Signals compliance's services send to the parts above them (tasks, receivers), which the
services may not import.

`sanctions_list_imported(sender=SanctionsImport, sanctions_import, rescreen)`: sent inside
the import's transaction when a changed OFAC list was stored; `rescreen` says whether every
player is to be screened again against it (receivers.py enqueues that task on commit).
"""

from django.dispatch import Signal

sanctions_list_imported = Signal()
