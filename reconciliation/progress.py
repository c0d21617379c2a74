"""Progress of long imports and runs, visible in the admin while the work is still running.

The work itself runs in one connection (COPY, long statements, transactions that commit only
at the end), so progress is written through a second, autocommit connection. Inside an outer
transaction (tests, or a caller's atomic block) the row may not be committed yet and a second
connection would wait on it, so there progress goes through the caller's own connection.
"""

import time

from django.db import connection


class Progress:
    def __init__(self, model, pk: int, *, min_interval: float = 0.5):
        self.table = model._meta.db_table
        self.pk = pk
        self.min_interval = min_interval
        self._last = 0.0
        self._side = None
        if not connection.in_atomic_block and connection.vendor == "postgresql":
            self._side = connection.get_new_connection(connection.get_connection_params())
            self._side.autocommit = True

    @property
    def reports_aside(self) -> bool:
        """Whether progress goes through its own connection (and so can be reported while
        the work's connection is busy streaming a COPY)."""
        return self._side is not None

    def update(self, *, force: bool = False, **fields) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        assignments = ", ".join(f"{name} = %s" for name in fields)
        sql = f"UPDATE {self.table} SET {assignments} WHERE id = %s"
        params = [*fields.values(), self.pk]
        if self._side is not None:
            with self._side.cursor() as cursor:
                cursor.execute(sql, params)
        else:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)

    def close(self) -> None:
        if self._side is not None:
            self._side.close()
            self._side = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
