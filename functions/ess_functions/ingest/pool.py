"""Database connections of the ingest function: an idle pool and how to open one."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from ess.db.connect import connect, connect_dsn


class Connections:
    """Idle database connections reused across requests; a failed one is discarded."""

    def __init__(self, factory: Callable[[], object]):
        self.factory = factory
        self._idle: list = []
        self._lock = threading.Lock()

    def take(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self.factory()

    def give(self, conn) -> None:
        with self._lock:
            self._idle.append(conn)

    @staticmethod
    def discard(conn) -> None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - it is broken already
            pass


def default_factory() -> Callable[[], object]:
    """Connect with ESS_DB_DSN, else through the Cloud SQL connector (ESS_DB_INSTANCE)."""
    # e.g. ESS_DB_DSN=postgresql://ess@127.0.0.1:55432/ess
    dsn = os.environ.get("ESS_DB_DSN")
    if dsn:
        return lambda: connect_dsn(dsn)
    return connect
