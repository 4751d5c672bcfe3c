"""Retention wired to the export (plain PostgreSQL, as on Cloud SQL): 40 days of rows, the old
days exported by `ess export` into a directory, then the retention task with raw_days = 30.
The exported days' partitions go and their files, rollups and data status stay as they were; a
day whose manifest is missing is kept; a day that got a row after its export is re-exported and
then retired; an unconfigured site's day is kept; `ess export` of a retired day rewrites nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from ess.cli import main as ess_main
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.retention import RetentionPolicy
from ess.db.rollup import run_rollups
from ess.regmap import load_map
from ess.sites import load_sites
from ess_functions.export.retention import run_retention
from ess_functions.objstore import open_store
from retention_data import GHOST, MISSING, SITES_YAML, TODAY, WRONG, days_left, load, run

M = load_map("default")
OLD = {TODAY - timedelta(days=d) for d in range(31, 41)}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.csv"))}


def _export(dsn: str, config: Path, out: Path, *days) -> None:
    argv = ["export", "--dest", str(out), "--dsn", dsn, "--config", str(config), "--quiet"]
    argv += ["--date", str(days[0])] if len(days) == 1 else \
        ["--from", str(days[0]), "--to", str(days[1])]
    assert ess_main(argv) == 0


def test_retention_task_on_exported_days(plain_db, tmp_path):
    config = tmp_path / "sites.yaml"
    config.write_text(SITES_YAML)
    conn = connect_dsn(plain_db)
    migrate(conn, [M], mode="partitioned")
    load(conn, plain=True)
    out = tmp_path / "export"
    _export(plain_db, config, out, TODAY - timedelta(days=40), TODAY - timedelta(days=29))
    (out / "_manifests" / f"date={MISSING}" / "manifest.json").unlink()
    run(conn, "INSERT INTO bank (ts, site_id, bank_id, bank_soc) VALUES (%s, 'ret-utc', 1, 7)",
        datetime.combine(WRONG, time(7, 7, 7), UTC))            # after the export: late
    assert run_rollups(conn, [M]).complete
    files, status = _files(out), run(conn, "SELECT * FROM data_status ORDER BY 1, 2, 3")
    rollups = run(conn, "SELECT count(*), sum(samples) FROM bank_1m")

    summary = run_retention(conn, load_sites(config), open_store(str(out), keep_metadata=False),
                            RetentionPolicy(30, 730, None), "csv")
    left = {d for d in OLD if d in days_left(conn)}
    assert left == {MISSING - timedelta(days=1), MISSING, GHOST}
    assert summary["reexported"] == 1 and summary["dropped"] == len(OLD) - 3
    after = _files(out)
    changed = {k for k in files if after[k] != files[k]}
    assert changed == {f"type=bank/date={WRONG}/site=ret-utc.csv"}
    assert after[f"type=bank/date={WRONG}/site=ret-utc.csv"].count(b"\n") == \
        files[f"type=bank/date={WRONG}/site=ret-utc.csv"].count(b"\n") + 1
    assert run(conn, "SELECT count(*), sum(samples) FROM bank_1m") == rollups
    now = run(conn, "SELECT * FROM data_status ORDER BY 1, 2, 3")
    assert [r for r in now if r[0] != WRONG] == [r for r in status if r[0] != WRONG]

    retired = TODAY - timedelta(days=35)
    before = _files(out)
    _export(plain_db, config, out, retired)                  # the files are the record now
    assert _files(out) == before
    assert run(conn, "SELECT * FROM data_status ORDER BY 1, 2, 3") == now
    conn.close()
