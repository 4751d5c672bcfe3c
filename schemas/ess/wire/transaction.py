"""Database transactions, done one way everywhere (DB-API connections: pg8000's, the Cloud SQL
connector's): the work of a block is committed whole or rolled back whole, and the cursor closed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def transaction(conn, *, begin: str | None = None, commit: bool = True) -> Iterator:
    """A cursor whose work is committed when the block ends (rolled back instead when `commit`
    is false, e.g. a dry run) and rolled back when it raises; a failed rollback never hides the
    error. Closed either way.

    Without `begin`, the driver's implicit transaction is used (in autocommit mode each statement
    commits on its own). With `begin` (a BEGIN statement naming an isolation level), the
    connection is switched to autocommit and the transaction opened and ended explicitly.
    """
    explicit = begin is not None
    if explicit:
        conn.autocommit = True
    cur = conn.cursor()
    try:
        if explicit:
            cur.execute(begin)
        yield cur
        if explicit:
            cur.execute("COMMIT" if commit else "ROLLBACK")
        elif not conn.autocommit:
            conn.commit() if commit else conn.rollback()
    except BaseException:
        try:
            if explicit:
                cur.execute("ROLLBACK")
            elif not conn.autocommit:
                conn.rollback()
        except Exception:  # noqa: BLE001 - the original error matters
            pass
        raise
    finally:
        cur.close()


@contextmanager
def reading(conn) -> Iterator:
    """A cursor for reads: the transaction they opened is rolled back at the end (outside
    autocommit mode), so the connection is left idle rather than idle in a transaction."""
    cur = conn.cursor()
    try:
        yield cur
    finally:
        cur.close()
        if not conn.autocommit:
            conn.rollback()
