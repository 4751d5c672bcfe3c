"""ess.wire.transaction against a real PostgreSQL: whole or nothing, and the cursor closed."""

from __future__ import annotations

import pg8000.dbapi
import pytest
from ess.db.connect import connect_dsn
from ess.wire.transaction import reading, transaction


@pytest.fixture
def conn(plain_db):
    c = connect_dsn(plain_db)
    cur = c.cursor()
    cur.execute("CREATE TABLE t (x int PRIMARY KEY)")
    c.commit()
    yield c
    try:
        c.close()
    except pg8000.dbapi.InterfaceError:
        pass        # closed by the test


def _rows(conn) -> list[int]:
    with reading(conn) as cur:
        cur.execute("SELECT x FROM t ORDER BY x")
        return [r[0] for r in cur.fetchall()]


@pytest.mark.parametrize("begin", [None, "BEGIN ISOLATION LEVEL REPEATABLE READ"])
def test_a_block_commits_whole_or_not_at_all(conn, begin):
    with transaction(conn, begin=begin) as cur:
        cur.execute("INSERT INTO t VALUES (1), (2)")
    with pytest.raises(pg8000.dbapi.DatabaseError):
        with transaction(conn, begin=begin) as cur:
            cur.execute("INSERT INTO t VALUES (3)")
            cur.execute("INSERT INTO t VALUES (1)")      # duplicate key: all of it goes
    assert _rows(conn) == [1, 2]


@pytest.mark.parametrize("begin", [None, "BEGIN"])
def test_a_dry_run_rolls_back(conn, begin):
    with transaction(conn, begin=begin, commit=False) as cur:
        cur.execute("INSERT INTO t VALUES (7)")
    assert _rows(conn) == []


def test_a_failed_rollback_does_not_hide_the_error(conn):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with transaction(conn) as cur:
            cur.execute("INSERT INTO t VALUES (1)")
            conn.close()                                # the rollback will fail too
            raise Boom


def test_reading_leaves_the_connection_idle(conn, plain_db):
    with reading(conn) as cur:
        cur.execute("SELECT pg_backend_pid()")
        (pid,) = cur.fetchone()
    other = connect_dsn(plain_db)
    try:
        look = other.cursor()
        look.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,))
        assert look.fetchone()[0] == "idle"       # not "idle in transaction"
    finally:
        other.close()
