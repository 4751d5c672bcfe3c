"""Data status across local midnight and over saved days, against a real TimescaleDB: a day
counts the same alone as inside a range (gaps and frozen runs across midnight in a non-UTC
zone), `ess status --from/--to` computes every day `data_status` lacks, and a saved day that
got frames since it was saved is computed again (and saved again by the next export)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import yaml
from ess.cli import main
from ess.codec import BlockData, Frame
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.writer import write_frames
from ess.regmap import load_map
from ess.status import report

M = load_map("default")
TZ = "Europe/Berlin"
D1, D2 = date(2025, 6, 2), date(2025, 6, 3)
MIDNIGHT = datetime(2025, 6, 3, tzinfo=ZoneInfo(TZ)).astimezone(UTC)
NOW = datetime(2025, 6, 10, tzinfo=UTC)
FROZEN_AFTER = 120.0


def _frame(bank: int, seq: int, at: float, value: int) -> Frame:
    """Bank `bank`'s frame `seq` polled `at` seconds after local midnight, registers from
    `value` (the same value: byte-identical registers)."""
    blocks = {b.name: BlockData(registers=Frame.registers_to_bytes(
        [(value * 7 + k) % 1000 for k in range(b.count)])) for b in M.blocks}
    us = int((MIDNIGHT.timestamp() + at) * 1_000_000)
    return Frame("site-a", bank, seq, us, us + 20_000, "default", 1, blocks)


def _write(conn, frames: list[Frame]) -> None:
    """Store the frames as committed a second after their poll (long before any export)."""
    write_frames(conn, frames, {M.key: M})
    cur = conn.cursor()
    cur.execute("UPDATE frames SET committed = ts + interval '1 second'")
    conn.commit()


@pytest.fixture
def db(timescale_db):
    conn = connect_dsn(timescale_db)
    migrate(conn, [M])
    yield timescale_db, conn
    conn.close()


def _by_day(days: list) -> dict:
    return {(d.bank_id, d.day): (d.stored, d.lost, d.frozen_s) for d in days}


def test_a_day_counts_gaps_and_frozen_runs_across_midnight_as_a_range_does(db):
    _, conn = db
    frames = [
        # bank 1: seq 1-5 up to 23:59:54, 16-20 from 00:00:05 (within frozen_after)
        *[_frame(1, s, -11 + s, s) for s in range(1, 6)],
        *[_frame(1, s, s - 11, s) for s in range(16, 21)],
        # bank 2: the same gap after a silence longer than frozen_after (the seed row)
        *[_frame(2, s, -611 + s, s) for s in range(1, 6)],
        *[_frame(2, s, s - 11, s) for s in range(16, 21)],
        # bank 3: identical registers from 23:58:00 to 00:02:59, seq contiguous
        *[_frame(3, s, s - 120, 5) for s in range(300)],
        # bank 4: identical from 23:50:00 to 23:54:59, silent, then identical again at 00:00
        *[_frame(4, s, s - 600, 5) for s in range(300)],
        *[_frame(4, 300 + s, s, 5) for s in range(180)]]
    _write(conn, frames)
    args = ("site-a", TZ, [1, 2, 3, 4])
    one = {**_by_day(report.compute(conn, *args, D1, D1, 1.0, FROZEN_AFTER, NOW)),
           **_by_day(report.compute(conn, *args, D2, D2, 1.0, FROZEN_AFTER, NOW))}
    both = _by_day(report.compute(conn, *args, D1, D2, 1.0, FROZEN_AFTER, NOW))
    assert one == both
    assert both[(1, D1)] == (5, 0, 0) and both[(1, D2)] == (5, 10, 0)
    assert both[(2, D1)] == (5, 0, 0) and both[(2, D2)] == (5, 10, 0)
    assert both[(3, D1)] == (120, 0, 0) and both[(3, D2)] == (180, 0, 180)
    assert both[(4, D1)] == (300, 0, 180) and both[(4, D2)] == (180, 0, 180)
    gaps = report.gaps(conn, "site-a", TZ, D2, D2)
    assert [(g["bank_id"], g["first_seq"], g["last_seq"]) for g in gaps] == [
        (1, 6, 15), (2, 6, 15)]
    assert gaps[0]["after"] == (MIDNIGHT - timedelta(seconds=6)).isoformat()


def _sites(tmp_path) -> str:
    path = tmp_path / "sites.yaml"
    path.write_text(yaml.safe_dump({"collector": {"frozen_after": FROZEN_AFTER}, "sites": [
        {"site_id": "site-a", "timezone": TZ,
         "devices": [{"host": "127.0.0.1", "port": 5020, "bank_id": 1}]}]}))
    return str(path)


def _status(dsn: str, sites: str, capsys, *days: date) -> tuple[int, dict]:
    code = main(["status", "--dsn", dsn, "--sites", sites, "--from", days[0].isoformat(),
                 "--to", days[-1].isoformat(), "--json", "--silent-after", "1e12"])
    return code, json.loads(capsys.readouterr().out)


def _save(conn, day: date) -> None:
    site = SimpleNamespace(site_id="site-a", timezone=TZ, devices=[SimpleNamespace(bank_id=1)])
    report.export_day(conn, site, day, 1.0, FROZEN_AFTER)


def test_a_range_computes_the_days_data_status_lacks(db, tmp_path, capsys):
    dsn, conn = db
    _write(conn, [_frame(1, s, s - 100, s) for s in range(200)])       # 23:58:20-00:01:39
    _save(conn, D2)                                     # the export never saved D1
    sites = _sites(tmp_path)
    code, doc = _status(dsn, sites, capsys, D1, D2)
    assert code == 0 and doc["gaps"] == []
    assert [(d["day"], d["stored"]) for d in doc["days"]] == [(D1.isoformat(), 100),
                                                            (D2.isoformat(), 100)]
    cur = conn.cursor()                   # a frame of the saved day gone, no new commit:
    cur.execute("DELETE FROM frames WHERE seq = 150")                 # the day stays as saved
    conn.commit()
    code, doc = _status(dsn, sites, capsys, D1, D2)
    assert [(d["stored"], d["lost"]) for d in doc["days"]] == [(100, 0), (100, 0)]
    assert [(g["kind"], g["first_seq"]) for g in doc["gaps"]] == [("lost", 150)]
    assert code == 1 and not doc["ok"]             # the listed loss fails the check


def test_a_saved_day_with_frames_committed_since_is_computed_again(db, tmp_path, capsys):
    dsn, conn = db
    _write(conn, [_frame(1, s, s - 101, s) for s in (*range(1, 50), *range(51, 101))])
    _save(conn, D1)
    sites = _sites(tmp_path)
    code, doc = _status(dsn, sites, capsys, D1)
    assert code == 1 and [(d["stored"], d["lost"]) for d in doc["days"]] == [(99, 1)]
    write_frames(conn, [_frame(1, 50, -51, 50)], {M.key: M})     # late: in the spool at export
    code, doc = _status(dsn, sites, capsys, D1)
    assert code == 0 and [(d["stored"], d["lost"]) for d in doc["days"]] == [(100, 0)]
    assert report.stored_days(conn, "site-a", D1, D1)[(1, D1)].lost == 1
    _save(conn, D1)                                               # the export's re-run
    kept = report.stored_days(conn, "site-a", D1, D1)[(1, D1)]
    assert (kept.stored, kept.lost) == (100, 0)
