"""Helpers of the tests that run as limited roles. The statements infra/db_grants.sql.tftpl
renders (Terraform's db_grants_sql) come from the product module `ess.db.grants`, which
`ess db setup` (the database job) runs; tests/db/test_grants.py checks both render the same
text, then runs these statements only."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from ess.db.connect import connect_dsn
from ess.db.grants import grants_sql, statements

__all__ = ["as_user", "grants_sql", "run_sql", "statements"]


def as_user(dsn: str, user: str) -> str:
    """The DSN with another user (local trust authentication)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port}"))


def run_sql(dsn: str, *sql: str) -> list[list]:
    """Run statements in one transaction; the rows of the last one that returns rows."""
    conn = connect_dsn(dsn)
    cur = conn.cursor()
    out: list[list] = []
    for s in sql:
        cur.execute(s)
        out = [list(r) for r in cur.fetchall()] if cur.description else out
    conn.commit()
    conn.close()
    return out
