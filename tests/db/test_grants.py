"""Partitioned mode as on Cloud SQL: a schema owner that is no superuser migrates and runs the
generated grants; ingest, holding only those, stores frames of days without partitions (the
upkeep runs as the owner), and export reads them and saves the day's data status."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pg8000.dbapi
import pytest
from ess.cli import main as ess_main
from ess.codec import BlockData, Frame, encode_frames
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.quote import ident
from ess.regmap import load_map
from ess.sites import load_sites
from ess_functions.ingest.envelope import Message
from ess_functions.ingest.ingestor import Ingestor
from ess_functions.ingest.pool import Connections
from ess_functions.ingest.quarantine import Quarantine
from grants import as_user as _as
from grants import grants_sql, statements
from grants import run_sql as _run

M = load_map("default")
TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "db_grants.sql.tftpl"
TERRAFORM = shutil.which("terraform")
SITES = "sites:\n  - site_id: own-a\n    timezone: UTC\n    devices:\n" \
        "      - {host: 127.0.0.1, port: 1502, bank_id: 1}\n"
CASES = {
    "main and replica": [{"label": "main (ess on ess-dev-main)", "writers": ["ing@p.iam"],
                          "readers": ["exp@p.iam"]},
                         {"label": "replica (ess on ess-dev-replica)", "writers": ["rep@p.iam"],
                          "readers": []}],
    "replica only": [{"label": "replica", "writers": ["rep"], "readers": []}],
    "none": [],
}


@pytest.fixture
def roles(plain_db):
    """owner (no superuser; owns schema public), ingest and export: LOGIN roles, nothing more."""
    tag = uuid.uuid4().hex[:8]
    names = {k: f"{k}_{tag}" for k in ("owner", "ingest", "export")}
    _run(plain_db, *[f"CREATE ROLE {ident(n)} LOGIN" for n in names.values()],
         f"ALTER SCHEMA public OWNER TO {ident(names['owner'])}")
    yield names
    _run(plain_db, f"REASSIGN OWNED BY {ident(names['owner'])} TO CURRENT_USER",
         *[f"DROP OWNED BY {ident(n)}" for n in names.values()],
         *[f"DROP ROLE {ident(n)}" for n in names.values()])


def _frame(when: datetime, seq: int) -> Frame:
    us = int(when.timestamp() * 1_000_000)
    blocks = {b.name: BlockData(registers=Frame.registers_to_bytes([0] * b.count))
              for b in M.blocks}
    return Frame("own-a", 1, seq, us, us + 20_000, M.map_id, M.version, blocks)


def _partitions(conn) -> dict[str, str]:
    cur = conn.cursor()
    cur.execute("SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid")
    out = dict(cur.fetchall())
    conn.rollback()
    return out


def test_ingest_and_export_with_only_the_generated_grants(plain_db, roles, tmp_path):
    owner = connect_dsn(_as(plain_db, roles["owner"]))
    assert migrate(owner, [M], mode="partitioned").mode == "partitioned"
    cur = owner.cursor()
    for s in statements(grants_sql([{"label": "main", "writers": [roles["ingest"]],
                                     "readers": [roles["export"]]}])):
        cur.execute(s)
    owner.commit()
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=30)
    assert f"bank_p{day:%Y%m%d}" not in _partitions(owner)
    (tmp_path / "sites.yaml").write_text(SITES)
    ingest = _as(plain_db, roles["ingest"])
    ing = Ingestor(load_sites(str(tmp_path / "sites.yaml")), "main",
                   Connections(lambda: connect_dsn(ingest)), Quarantine(str(tmp_path / "q")))
    for n, at in enumerate([day, day + timedelta(hours=12), day + timedelta(days=40)]):
        out = ing.handle(Message(f"m{n}", encode_frames([_frame(at, n)]), {"site_id": "own-a"}))
        assert out.status == "stored", out
    made = _partitions(owner)
    for d in (day, day + timedelta(days=40)):
        assert made[f"bank_p{d:%Y%m%d}"] == roles["owner"]
        assert made[f"frames_p{d:%Y%m%d}"] == roles["owner"]
    argv = ["export", "--from", f"{day:%Y-%m-%d}", "--to", f"{day:%Y-%m-%d}", "--dest",
            str(tmp_path / "out"), "--dsn", _as(plain_db, roles["export"]),
            "--config", str(tmp_path / "sites.yaml"), "--quiet"]
    assert ess_main(argv) == 0
    assert list((tmp_path / "out").rglob("*.csv*"))
    cur.execute("SELECT stored FROM data_status WHERE site_id = 'own-a' AND day = %s",
                (day.date(),))
    assert cur.fetchone()[0] == 2
    owner.rollback()
    owner.close()
    _cannot(ingest)


def _cannot(ingest: str) -> None:
    """The ingest role gets no more than the grants: no DDL, no direct partition function."""
    conn = connect_dsn(ingest)
    cur = conn.cursor()
    for sql in ("CREATE TABLE x (a int)",
                "SELECT ess_ensure_partition('bank'::regclass, '2001-01-01'::date)",
                "SELECT ess_ensure_partitions('bank'::regclass, 400)",
                "DELETE FROM bank"):
        with pytest.raises(pg8000.dbapi.DatabaseError) as err:
            cur.execute(sql)
        assert err.value.args[0]["C"] == "42501", sql
        conn.rollback()
    conn.close()


def test_migrate_reinstalls_upkeep_that_ran_as_the_caller(plain_db):
    conn = connect_dsn(plain_db)
    migrate(conn, [M], mode="partitioned")
    cur = conn.cursor()
    cur.execute("ALTER FUNCTION ess_ensure_day_partitions(date) SECURITY INVOKER RESET ALL")
    conn.commit()
    m = migrate(conn, [M])
    assert m is not None and m.description == "install partition upkeep"
    cur.execute("SELECT prosecdef, proconfig FROM pg_proc "
                "WHERE oid = 'ess_ensure_day_partitions(date)'::regprocedure")
    assert cur.fetchone() == [True, ["search_path=pg_catalog, public, pg_temp"]]
    conn.rollback()
    assert migrate(conn, [M]) is None
    conn.close()


def _terraform_render(tmp_path: Path, databases: list[dict]) -> str:
    (tmp_path / "main.tf").write_text(
        'variable "databases" {\n  type = list(object({ label = string, '
        "writers = list(string), readers = list(string) }))\n}\n")
    (tmp_path / "case.tfvars.json").write_text(json.dumps({"databases": databases}))
    proc = subprocess.run(
        [TERRAFORM, "console", "-no-color", "-var-file=case.tfvars.json"],
        input=f'base64encode(templatefile("{TEMPLATE}", {{ databases = var.databases }}))\n',
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "PATH": "/usr/bin:/bin",
             "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return base64.b64decode(proc.stdout.strip().strip('"')).decode()


@pytest.mark.skipif(TERRAFORM is None, reason="no terraform binary on PATH")
@pytest.mark.parametrize("case", list(CASES))
def test_terraform_renders_the_same_grants(tmp_path, case):
    assert _terraform_render(tmp_path, CASES[case]) == grants_sql(CASES[case])


# --- rollups and retention (issue 23) ------------------------------------------------------

def test_export_role_keeps_rollups_and_retention_with_only_the_grants(plain_db, roles):
    """The export's rollup and retention tasks as a role holding only the generated grants: it
    rolls up, drops exported days through ess_retire_raw, prunes rollups; it cannot drop or
    delete raw rows by itself."""
    from ess.db.retention import RetentionPolicy, prune_rollups, retire
    from ess.db.rollup import run_rollups
    from retention_data import ZONES, counts, days_left, load

    owner = connect_dsn(_as(plain_db, roles["owner"]))
    migrate(owner, [M], mode="partitioned")
    cur = owner.cursor()
    for s in statements(grants_sql([{"label": "main", "writers": [roles["ingest"]],
                                     "readers": [roles["export"]]}])):
        cur.execute(s)
    owner.commit()
    load(owner, plain=True)
    export = connect_dsn(_as(plain_db, roles["export"]))
    assert run_rollups(export, [M]).complete
    manifests = counts(owner)
    results = retire(export, ZONES, lambda site, day: manifests.get((site, day)), raw_days=30)
    assert sum(r["dropped"] for r in results) >= 5
    assert min(days_left(owner)) > datetime.now(UTC).date() - timedelta(days=41)
    pruned = prune_rollups(export, [M], [(s, 1) for s in ZONES], RetentionPolicy(30, 35, 38))
    assert pruned["rack_1m"] > 0
    ecur = export.cursor()
    day = max(days_left(owner))
    for sql in (f"DROP TABLE bank_p{day:%Y%m%d}", "DELETE FROM bank", "TRUNCATE frames"):
        with pytest.raises(pg8000.dbapi.DatabaseError) as err:
            ecur.execute(sql)
        assert err.value.args[0]["C"] == "42501", sql
        export.rollback()
    export.close()
    owner.close()
