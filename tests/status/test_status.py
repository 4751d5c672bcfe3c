"""Data status from the frame ledger: lost, reset, missed, failed, frozen and day arithmetic,
against a real TimescaleDB (frames written by the product's writer)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import numpy as np
import pytest
import yaml
from ess.cli import main
from ess.codec import BlockData, BlockStatus, Frame
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.writer import write_frames
from ess.regmap import load_map
from ess.status import report

M = load_map("default")
DAY = date(2025, 6, 2)
T0 = int(datetime(2025, 6, 2, 10, 0, tzinfo=UTC).timestamp()) * 1_000_000
SKIP = range(50, 60)           # ticks without a poll (seq stays contiguous): missed
LOST_TICK = 100                # its frame is deleted after the write: lost
RESET_TICK = 150               # a new spool: seq restarts
FROZEN = range(160, 200)       # identical registers
N = 200


def _blocks(i: int, rng) -> dict:
    src = 160 if i in FROZEN else i
    vals = np.random.default_rng(src).integers(0, 1200, sum(b.count for b in M.blocks))
    out, pos = {}, 0
    for b in M.blocks:
        out[b.name] = BlockData(registers=Frame.registers_to_bytes(vals[pos:pos + b.count]
                                                                   .tolist()))
        pos += b.count
    if i % 5 == 0 and i not in FROZEN:
        out["PCS"] = BlockData(BlockStatus.TIMEOUT)
    return out


def _frames() -> list[Frame]:
    rng = np.random.default_rng(0)
    out, seq = [], 1000
    for i in range(N):
        if i in SKIP:
            continue
        if i == RESET_TICK:
            seq = 0
        out.append(Frame("site-a", 1, seq, T0 + i * 1_000_000, T0 + i * 1_000_000 + 25_000,
                         "default", 1, _blocks(i, rng)))
        seq += 1
    return out


@pytest.fixture
def ledger_db(timescale_db):
    conn = connect_dsn(timescale_db)
    migrate(conn, [M])
    frames = _frames()
    published = datetime.fromtimestamp(T0 / 1e6 + 300, UTC)
    write_frames(conn, frames, {M.key: M}, published=published)
    lost = next(f for f in frames if f.poll_start_us == T0 + LOST_TICK * 1_000_000)
    cur = conn.cursor()
    for table in ("bank", "rack", "pcs", "etc", "frames"):
        cur.execute(f"DELETE FROM {table} WHERE ts = to_timestamp(%s)", (lost.poll_start_us / 1e6,))
    conn.commit()
    yield timescale_db, conn, lost
    conn.close()


def test_counts_from_the_ledger(ledger_db):
    _, conn, lost = ledger_db
    now = datetime(2025, 6, 3, tzinfo=UTC)
    [d] = report.compute(conn, "site-a", "UTC", [1], DAY, DAY, 1.0, 10.0, now)
    assert d.expected == 86_400
    assert d.stored == N - len(SKIP) - 1
    assert d.lost == 1 and d.resets == 1
    assert d.missed == 86_400 - d.stored - 1
    fails = [i for i in range(N) if i % 5 == 0 and i not in FROZEN and i not in SKIP
             and i != LOST_TICK]
    assert d.failed == {"PCS:timeout": len(fails)} and d.failed_polls == len(fails)
    assert d.frozen_s == len(FROZEN) - 10
    assert d.max_lag_s is not None and d.max_lag_s > 0
    assert d.first_poll.timestamp() == T0 / 1e6
    gaps = report.gaps(conn, "site-a", "UTC", DAY, DAY)
    assert [(g["kind"], g.get("first_seq"), g.get("last_seq")) for g in gaps] == [
        ("lost", lost.seq, lost.seq), ("reset", None, None)]
    assert gaps[0]["after"] < lost.poll_start.isoformat() < gaps[0]["before"]
    assert gaps[1]["to_seq"] == 0


def test_ledger_keeps_publish_time_and_every_failed_frame(ledger_db):
    _, conn, _ = ledger_db
    dead = Frame("site-a", 2, 7, T0, T0 + 1000, "default", 1,
                 {b.name: BlockData(BlockStatus.TRANSPORT) for b in M.blocks})
    write_frames(conn, [dead], {M.key: M})
    write_frames(conn, [dead], {M.key: M})            # idempotent
    cur = conn.cursor()
    cur.execute("SELECT seq, crc, failed FROM frames WHERE bank_id = 2")
    want = [f"{b.name}:transport" for b in M.blocks]
    assert [list(r) for r in cur.fetchall()] == [[7, None, want]]
    cur.execute("SELECT count(*) FROM frames WHERE bank_id = 1 AND published IS NULL")
    assert cur.fetchone()[0] == 0
    conn.rollback()


def test_frozen_now_and_last_seen(ledger_db):
    _, conn, _ = ledger_db
    now = datetime.fromtimestamp(T0 / 1e6 + N, UTC)
    [b] = report.last_seen(conn, "site-a", [1], now, frozen_after=10)
    assert b["frozen"] and b["frozen_s"] == len(FROZEN) - 1 and b["age_s"] == 1.0
    [b] = report.last_seen(conn, "site-a", [1], now, frozen_after=60)
    assert not b["frozen"]


def test_ess_status_cli(ledger_db, tmp_path, capsys):
    dsn, conn, lost = ledger_db
    sites = tmp_path / "sites.yaml"
    sites.write_text(yaml.safe_dump({"collector": {"frozen_after": 10}, "sites": [
        {"site_id": "site-a", "timezone": "UTC",
         "devices": [{"host": "127.0.0.1", "port": 5020, "bank_id": 1}]}]}))
    assert main(["status", "--dsn", dsn, "--sites", str(sites), "--date", DAY.isoformat(),
                 "--json"]) == 1                  # a frame was lost (and the bank is silent)
    doc = json.loads(capsys.readouterr().out)
    [d] = doc["days"]
    assert d["lost"] == 1 and d["frozen_s"] == len(FROZEN) - 10
    assert doc["gaps"][0]["first_seq"] == lost.seq
    assert main(["status", "--dsn", dsn, "--sites", str(sites), "--date",
                 DAY.isoformat()]) == 1
    text = capsys.readouterr().out
    assert f"lost seq {lost.seq}..{lost.seq}" in text and "lost=1" in text
    # once the export has written the day, the range reads it back from data_status
    days = report.compute(conn, "site-a", "UTC", [1], DAY, DAY, 1.0, 10.0,
                          datetime(2025, 6, 3, tzinfo=UTC))
    assert report.save(conn, days) == 1 and report.save(conn, days) == 1
    kept = report.stored_days(conn, "site-a", DAY, DAY)
    assert kept[(1, DAY)].lost == 1 and kept[(1, DAY)].failed == days[0].failed


@pytest.mark.parametrize(("tz", "day", "ticks"), [
    ("Europe/Berlin", date(2025, 3, 30), 82_800), ("Europe/Berlin", date(2025, 10, 26), 90_000),
    ("Europe/Berlin", date(2025, 6, 2), 86_400), ("Asia/Seoul", date(2025, 3, 30), 86_400),
    ("Asia/Seoul", date(2025, 10, 26), 86_400)])
def test_day_arithmetic(tz, day, ticks):
    assert report.expected_ticks(day, tz, 1.0) == ticks
    assert report.expected_ticks(day, tz, 2.0) == ticks // 2
