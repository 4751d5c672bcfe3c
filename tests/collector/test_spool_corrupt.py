"""A corrupt spool row is set aside (bytes kept, ERROR logged) and the site's other frames go on."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

from collector_support import (
    CollectorProcess,
    new_topic,
    pull_frames,
    start_simulator,
    write_config,
)
from ess.codec import BlockData, Frame
from ess_collector.sender import SiteSender
from ess_collector.spool import AsyncSpool, Spool


def _frame(t_us: int) -> Frame:
    return Frame("site-a", 1, 0, t_us, t_us + 5000, "default", 1,
                 {"ETC": BlockData(registers=Frame.registers_to_bytes([1, 2, 3, 0, 5]))})


def test_a_corrupt_row_is_set_aside_and_the_others_decode(tmp_path, caplog):
    spool = Spool(tmp_path / "s.sqlite")
    stored = spool.append([_frame(k * 1_000_000) for k in range(1, 4)])
    bad_id = stored[1].id
    body = spool.db.execute("SELECT body FROM frames WHERE id = ?", (bad_id,)).fetchone()[0]
    broken = body[:-1] + bytes([body[-1] ^ 0xFF])          # checksum mismatch
    spool.db.execute("UPDATE frames SET body = ? WHERE id = ?", (broken, bad_id))
    sender = SiteSender.__new__(SiteSender)                  # only the decoding step
    sender.site, sender.spool = "site-a", SimpleNamespace(
        set_aside=lambda i, e: asyncio.sleep(0, spool.set_aside(i, e)))
    rows = spool.read("site-a", 0, 10)
    with caplog.at_level(logging.ERROR):
        frames = asyncio.run(sender._checked(rows))
    assert [i for i, _, _ in frames] == [stored[0].id, stored[2].id]
    assert spool.corrupt() == [(bad_id, "site-a", broken, "frame: checksum mismatch")]
    assert spool.count("site-a") == 2
    assert any("undecodable" in r.getMessage() and r.levelno == logging.ERROR
               for r in caplog.records)
    assert hasattr(AsyncSpool, "set_aside")


def test_real_sender_publishes_the_other_frames(tmp_path, pubsub_emulator):
    """`ess collect` against the Pub/Sub emulator, its spool holding three frames of site-a
    bank 1 from a minute ago with the middle one corrupt: the other two are published, the
    corrupt row is in the spool's `corrupt` table, and an ERROR is logged."""
    topic, sub = new_topic(pubsub_emulator)
    sim = start_simulator(1, tmp_path)
    try:
        config = write_config(tmp_path, sim, topic)
        base = (int(time.time()) - 60) * 1_000_000
        spool = Spool(tmp_path / "spool.sqlite")
        stored = spool.append([_frame(base + k * 1_000_000) for k in range(3)])
        bad_id = stored[1].id
        body = spool.db.execute("SELECT body FROM frames WHERE id = ?", (bad_id,)).fetchone()[0]
        spool.db.execute("UPDATE frames SET body = ? WHERE id = ?",
                         (body[:-1] + bytes([body[-1] ^ 0xFF]), bad_id))
        spool.close()
        col = CollectorProcess(config, pubsub_emulator.host, tmp_path / "collector.log",
                               ticks=3).start()
        try:
            want = {base, base + 2_000_000}
            got = pull_frames(pubsub_emulator, sub, timeout=30, until=lambda fs: want <= {
                f.poll_start_us for f in fs})
            assert col.wait(30) == 0
            got += pull_frames(pubsub_emulator, sub, timeout=10)
        finally:
            col.stop()
    finally:
        sim.stop()
    polls = {f.poll_start_us for f, _ in got}
    assert want <= polls and base + 1_000_000 not in polls
    assert any(f.poll_start_us > base + 30_000_000 for f, _ in got)   # the live polls too
    spool = Spool(tmp_path / "spool.sqlite")
    assert [(i, s, e) for i, s, _, e in spool.corrupt()] == [
        (bad_id, "site-a", "frame: checksum mismatch")]
    spool.close()
    assert any(e.get("severity") == "ERROR" and "undecodable" in e.get("message", "")
               for e in col.events())
