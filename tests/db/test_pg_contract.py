"""The pg8000 internals ess.db.pg relies on, checked against the installed pg8000.

pyproject.toml bounds pg8000 below the next minor release; before widening the bound, these
tests must pass against the new version. The first ones read signatures only (no database); the
last ones use each internal on a real connection.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import socket
import tomllib
from importlib.metadata import version
from pathlib import Path

import pg8000.core
import pg8000.dbapi
import pytest
from ess.db import pg
from ess.db.connect import connect_dsn
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
CHANGED = "pg8000 {} changed an internal ess.db.pg uses ({}): adapt ess/db/pg.py"


def _params(func) -> list[str]:
    return list(inspect.signature(func).parameters)


def test_the_installed_and_pinned_versions_are_within_the_bound():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (req,) = [Requirement(d) for d in deps if d.startswith("pg8000")]
    assert req.specifier and any(s.operator == "<" for s in req.specifier), \
        "pg8000 needs an upper bound: ess.db.pg uses its internals"
    assert req.specifier.contains(version("pg8000")), version("pg8000")
    for fn in ("ingest", "export"):
        text = (ROOT / "functions" / fn / "requirements.txt").read_text()
        (pin,) = re.findall(r"^pg8000==(\S+)", text, re.M)
        assert req.specifier.contains(pin), (fn, pin, str(req.specifier))


def test_the_internal_signatures_are_the_ones_used():
    v = version("pg8000")
    conn_cls = pg8000.dbapi.Connection
    assert issubclass(conn_cls, pg8000.core.CoreConnection), CHANGED.format(v, "Connection")
    assert _params(conn_cls.prepare_statement) == ["self", "statement", "oids"], \
        CHANGED.format(v, "prepare_statement")
    assert _params(conn_cls.execute_named) == [
        "self", "statement_name_bin", "params", "columns", "input_funcs", "statement"], \
        CHANGED.format(v, "execute_named")
    assert "stream" in _params(pg8000.dbapi.Cursor.execute), CHANGED.format(v, "COPY stream=")


def test_an_error_that_is_not_the_servers_has_no_sqlstate():
    assert pg.sqlstate(ValueError("x")) is None and pg.server_message(OSError()) == ""
    assert pg.sqlstate(pg.DatabaseError("no dict")) is None


@pytest.fixture
def conn(plain_db):
    c = connect_dsn(plain_db, read_timeout=123.0)
    yield c
    c.close()


def test_the_socket_is_tuned(conn):
    sock = conn._usock
    assert isinstance(sock, socket.socket), CHANGED.format(version("pg8000"), "_usock")
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert sock.gettimeout() == 123.0


def test_prepared_statements_run_by_name(conn):
    sql = "SELECT $1::int + 1, $2::text"
    assert pg.run_prepared(conn, sql, ["41", "a"]) == [[42, "a"]]
    assert pg.run_prepared(conn, sql, ["1", "b"]) == [[2, "b"]]   # prepared once, reused
    assert len(pg._prepared[conn]) == 1


def test_server_errors_carry_their_sqlstate(conn):
    cur = conn.cursor()
    with pytest.raises(pg.DatabaseError) as err:
        cur.execute("SELECT * FROM no_such_table")
    assert pg.sqlstate(err.value) == "42P01"
    assert "no_such_table" in pg.server_message(err.value)
    conn.rollback()


def test_copy_streams_into_a_file(conn):
    out = io.BytesIO()
    n = pg.copy_out(conn.cursor(), "COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT "
                                   "WITH (FORMAT csv)", out)
    assert (n, out.getvalue()) == (3, b"1\n2\n3\n")


def test_only_the_adapter_imports_pg8000():
    found = []
    for base in ("schemas/ess", "collector/ess_collector", "functions"):
        for path in sorted((ROOT / base).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n.split(".")[0] == "pg8000" for n in names):
                    found.append(str(path.relative_to(ROOT)))
    assert found == ["schemas/ess/db/pg.py"], found
