"""The daily export's data status uses the sites config's collector interval and frozen_after
(`ess export` against a real TimescaleDB, into a local directory)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import yaml
from ess.cli import main
from ess.codec import BlockData, Frame
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.writer import write_frames
from ess.regmap import load_map

M = load_map("default")
DAY = date(2025, 6, 2)
T0 = int(datetime(2025, 6, 2, 10, 0, tzinfo=UTC).timestamp())
INTERVAL, FROZEN_AFTER = 2.0, 10.0
N, FROZEN_FROM = 60, 30             # frames 30.. serve identical registers


def _frame(i: int) -> Frame:
    src = min(i, FROZEN_FROM)
    blocks = {b.name: BlockData(registers=Frame.registers_to_bytes(
        [(src * 7 + k) % 1000 for k in range(b.count)])) for b in M.blocks}
    us = int((T0 + i * INTERVAL) * 1_000_000)
    return Frame("site-a", 1, i + 1, us, us + 20_000, "default", 1, blocks)


def _sites(tmp_path, collector: dict) -> str:
    path = tmp_path / "sites.yaml"
    path.write_text(yaml.safe_dump({"collector": collector, "sites": [
        {"site_id": "site-a", "timezone": "UTC",
         "devices": [{"host": "127.0.0.1", "port": 5020, "bank_id": 1}]}]}))
    return str(path)


def _export(dsn: str, sites: str, dest) -> dict:
    assert main(["export", "--date", DAY.isoformat(), "--config", sites, "--dest", str(dest),
                 "--dsn", dsn]) == 0
    doc = json.loads((dest / "_manifests" / f"date={DAY}" / "manifest.json").read_text())
    return doc["data_status"]["site-a/bank1"]


def test_export_status_uses_the_configured_interval_and_frozen_after(timescale_db, tmp_path):
    conn = connect_dsn(timescale_db)
    try:
        migrate(conn, [M])
        write_frames(conn, [_frame(i) for i in range(N)], {M.key: M})
        configured = _export(timescale_db, _sites(tmp_path, {
            "interval": INTERVAL, "frozen_after": FROZEN_AFTER}), tmp_path / "a")
        assert configured["expected"] == 86_400 / INTERVAL and configured["stored"] == N
        assert configured["missed"] == 86_400 / INTERVAL - N and configured["lost"] == 0
        frozen_frames = N - FROZEN_FROM - int(FROZEN_AFTER / INTERVAL)
        assert configured["frozen_s"] == frozen_frames * INTERVAL
        cur = conn.cursor()
        cur.execute("SELECT expected, frozen_s FROM data_status WHERE site_id = 'site-a'")
        assert [list(r) for r in cur.fetchall()] == [[43_200, frozen_frames * INTERVAL]]
        conn.rollback()
        defaults = _export(timescale_db, _sites(tmp_path, {}), tmp_path / "b")
        assert defaults["expected"] == 86_400 and defaults["frozen_s"] == 0
    finally:
        conn.close()
