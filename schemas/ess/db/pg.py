"""pg8000 behind one module: every use the project makes of the driver goes through here.

Three of them reach past the DB-API into pg8000's internals, which may change in any minor
release (pyproject.toml bounds the version; tests/db/test_pg_contract.py fails loudly if they
change): the socket (`_usock`: Nagle, read timeouts), prepared statements run by name
(`prepare_statement` / `execute_named`: the writer's statement is parsed and planned once per
connection), and the SQLSTATE in a server error (`args[0]["C"]`). COPY ... TO STDOUT streams into
a file through `cursor.execute(..., stream=)`.
"""

from __future__ import annotations

import socket
from weakref import WeakKeyDictionary

import pg8000.dbapi

InterfaceError = pg8000.dbapi.InterfaceError   # the connection failed or is closed
DatabaseError = pg8000.dbapi.DatabaseError     # the server refused a statement


def connect(**kwargs):
    """A pg8000 DB-API connection (`user`, `password`, `host`, `port`, `database`, `timeout`,
    `application_name`, `ssl_context`)."""
    return pg8000.dbapi.connect(**kwargs)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a server error (e.g. `23514`), None for any other exception."""
    if isinstance(exc, DatabaseError) and exc.args and isinstance(exc.args[0], dict):
        return exc.args[0].get("C")
    return None


def server_message(exc: BaseException) -> str:
    """The primary message of a server error ('' for any other exception)."""
    if isinstance(exc, DatabaseError) and exc.args and isinstance(exc.args[0], dict):
        return str(exc.args[0].get("M", ""))
    return ""


def tune(conn, no_delay: bool = True, read_timeout: float | None = None) -> None:
    """Socket settings pg8000 does not expose.

    Nagle off: pg8000 writes a small transaction in several packets, and Nagle plus delayed ACKs
    stall each one ~40 ms. `read_timeout`: pg8000 applies its connect timeout to every read, too
    short for a long COPY.
    """
    sock = getattr(conn, "_usock", None)
    if sock is None:
        return
    if no_delay and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if read_timeout is not None:
        sock.settimeout(read_timeout)


# Per connection: SQL text -> pg8000's prepared statement (name, columns, input functions).
# Entries go with their connection.
_prepared: WeakKeyDictionary = WeakKeyDictionary()


def run_prepared(conn, sql: str, params: list[str]) -> list:
    """Execute one statement in autocommit mode; return its rows.

    `params` are text values for $1..$n. The statement is prepared once per connection, so the
    server parses and plans it once, not per call.
    """
    if not conn.autocommit:
        conn.rollback()
        conn.autocommit = True
    prepared = _prepared.get(conn)
    if prepared is None:
        prepared = _prepared[conn] = {}
    if sql not in prepared:
        prepared[sql] = conn.prepare_statement(sql, oids=())
    name, columns, input_funcs = prepared[sql]
    context = conn.execute_named(name, params, columns, input_funcs, sql)
    return context.rows or []


def copy_out(cur, sql: str, out) -> int:
    """Run `COPY ... TO STDOUT`, writing its output into the file `out`; return the row count."""
    cur.execute(sql, stream=out)
    return cur.rowcount
