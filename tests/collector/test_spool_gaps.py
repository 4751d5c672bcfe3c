"""Frames the spool drops stay visible: their sequence numbers are never given again, so the
ledger counts them as lost, and the collector logs an ERROR with how many (issue 21, item 3).

Three ways a frame leaves the spool unpublished: the age bound, the size bound, and a write that
fails (a full disk: SQLite's `max_page_count` makes the database full without filling the disk).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from ess.cli import main as ess_main
from ess.codec import BlockData, Frame, decode_frames, encode_frame, pack_bodies
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.regmap import load_map
from ess_collector.spool import AsyncSpool, Spool, SpoolWriteFailed

M = load_map("default")


def _frame(t: datetime, bank: int = 1, words: int | None = None) -> Frame:
    us = int(t.timestamp() * 1_000_000)
    blocks = {b.name: BlockData(registers=Frame.registers_to_bytes([3] * (words or b.count)))
              for b in M.blocks}
    return Frame("gap-a", bank, 0, us, us + 20_000, M.map_id, M.version, blocks)


def _full(spool: Spool) -> None:
    """Let the database file grow no more: the next write that needs a page fails (SQLITE_FULL)."""
    pages = spool.db.execute("PRAGMA page_count").fetchone()[0]
    spool.db.execute(f"PRAGMA max_page_count = {pages}")


def _room(spool: Spool) -> None:
    spool.db.execute("PRAGMA max_page_count = 1073741823")


def test_a_failed_write_uses_up_its_seqs(tmp_path):
    """A write that fails loses its frames but not their numbers: the next frames continue
    after them, also after a restart."""
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    s = Spool(tmp_path / "s.sqlite")
    assert [x.frame.seq for x in s.append([_frame(t0 + timedelta(seconds=k))
                                           for k in range(3)])] == [1, 2, 3]
    _full(s)
    with pytest.raises(SpoolWriteFailed) as failed:
        s.append([_frame(t0 + timedelta(seconds=k)) for k in range(3, 203)])
    assert failed.value.lost.count == 200
    assert failed.value.lost.seqs == "gap-a/bank1 4..203"
    assert s.count() == 3
    _room(s)
    assert [x.frame.seq for x in s.append([_frame(t0 + timedelta(seconds=300))])] == [204]
    s.close()
    s = Spool(tmp_path / "s.sqlite")
    assert [x.frame.seq for x in s.append([_frame(t0 + timedelta(seconds=301))])] == [205]
    s.close()


def test_the_body_published_is_the_body_stored(tmp_path):
    """The spool encodes a frame once; what the publisher packs are the stored bytes."""
    s = Spool(tmp_path / "s.sqlite")
    stored = s.append([_frame(datetime(2026, 3, 1, tzinfo=UTC))])
    (row_id, poll_us, body), = s.read("gap-a", 0, 10)
    assert (row_id, poll_us, body) == (stored[0].id, stored[0].frame.poll_start_us,
                                       stored[0].body)
    assert body == encode_frame(stored[0].frame)
    message = pack_bodies([body])
    assert message[-len(body):] == body and decode_frames(message)[0].seq == 1
    s.close()


def _publish(spool: Spool, ingestor, n: list[int]) -> None:
    """What the sender does: the spool's stored bodies, as they are, in one message."""
    from ess_functions.ingest.envelope import Message

    rows = spool.read("gap-a", 0, 10_000)
    n[0] += 1
    outcome = ingestor.handle(Message(f"m{n[0]}", pack_bodies([b for _, _, b in rows]),
                                      {"site_id": "gap-a"}))
    assert outcome.status == "stored", outcome
    spool.delete([i for i, _, _ in rows])


def _status(dsn: str, sites, day0, day1, capsys) -> dict:
    capsys.readouterr()
    ess_main(["status", "--dsn", dsn, "--sites", str(sites), "--from", str(day0), "--to",
              str(day1), "--json"])
    return json.loads(capsys.readouterr().out)


def test_dropped_frames_are_lost_in_the_ledger(tmp_path, timescale_db, caplog, capsys):
    """Age bound, size bound and a failed write each drop frames; the rest are published and
    stored. `ess status` counts exactly the dropped frames as lost, with their seq ranges, and
    each drop logged one ERROR (stage=spool) with its count."""
    from ess.sites import load_sites
    from ess_functions.ingest.ingestor import Ingestor
    from ess_functions.ingest.pool import Connections
    from ess_functions.ingest.quarantine import Quarantine

    conn = connect_dsn(timescale_db)
    migrate(conn, [M])
    conn.close()
    sites = tmp_path / "sites.yaml"
    sites.write_text("sites:\n  - site_id: gap-a\n    timezone: UTC\n    devices:\n"
                     "      - {host: 127.0.0.1, port: 1502, bank_id: 1}\n")
    ingestor = Ingestor(load_sites(str(sites)), "main",
                        Connections(lambda: connect_dsn(timescale_db)),
                        Quarantine(str(tmp_path / "quarantine")))
    now = datetime.now(UTC).replace(microsecond=0)
    t = [now - timedelta(hours=3) + timedelta(seconds=k) for k in range(100)]
    spool = Spool(tmp_path / "spool.sqlite", max_age=2 * 3600)
    n = [0]
    spool.append([_frame(x) for x in t[0:5]])                  # seq 1..5: published
    _publish(spool, ingestor, n)
    spool.append([_frame(x) for x in t[5:10]])                 # seq 6..10: too old
    spool.append([_frame(now - timedelta(seconds=90 - k)) for k in range(40)])   # 11..50
    spool.max_bytes = spool.total_bytes // 2                   # the size bound: oldest go
    with caplog.at_level(logging.ERROR, logger="ess_collector.spool"):
        dropped = spool.enforce_bounds(now.timestamp())
        assert [d.code for d in dropped] == ["spool_age", "spool_full"]
        assert dropped[0].count == 5 and dropped[0].seqs == "gap-a/bank1 6..10"
        by_size = dropped[1].count
        assert 0 < by_size < 40
        spool.max_bytes = 1 << 30
        _publish(spool, ingestor, n)                           # what the size bound left
        _full(spool)
        asyncio.run(_submit(spool, [_frame(now - timedelta(seconds=40 - k), words=4000)
                                    for k in range(10)]))   # too big for the free pages
        _room(spool)
    spool.append([_frame(now - timedelta(seconds=20 - k)) for k in range(5)])    # 61..65
    _publish(spool, ingestor, n)
    spool.close()

    errors = [r.json_fields for r in caplog.records if r.levelno == logging.ERROR]
    assert [(e["stage"], e["reason"], e["frames"]) for e in errors] == [
        ("spool", "spool_age", 5), ("spool", "spool_full", by_size),
        ("spool", "spool_write_failed", 10)]
    assert errors[2]["seqs"] == "gap-a/bank1 51..60"
    doc = _status(timescale_db, sites, t[0].date(), now.date(), capsys)
    assert sum(d["stored"] for d in doc["days"]) == 5 + (40 - by_size) + 5
    assert sum(d["lost"] for d in doc["days"]) == 5 + by_size + 10
    lost = sorted((g["first_seq"], g["last_seq"]) for g in doc["gaps"] if g["kind"] == "lost")
    assert lost == [(6, 10 + by_size), (51, 60)]


async def _submit(spool: Spool, frames: list[Frame]) -> None:
    committed: list = []
    front = AsyncSpool(spool, committed.extend)
    for f in frames:
        front.submit(f)
    await front.drained()
    front.pool.shutdown(wait=True)
    assert committed == [], "a failed write commits nothing"
