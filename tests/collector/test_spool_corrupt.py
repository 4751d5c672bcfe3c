"""A corrupt spool row is set aside (bytes kept, ERROR logged) and the site's other frames go on."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

from ess.codec import BlockData, Frame
from ess_collector.sender import SiteSender
from ess_collector.spool import AsyncSpool, Spool


def _frame(t_us: int) -> Frame:
    return Frame("site-a", 1, 0, t_us, t_us + 5000, "default", 1,
                 {"ETC": BlockData(registers=Frame.registers_to_bytes([1, 2, 3, 0, 5]))})


def test_a_corrupt_row_is_set_aside_and_the_others_decode(tmp_path, caplog):
    spool = Spool(tmp_path / "s.sqlite")
    stored = spool.append([_frame(k * 1_000_000) for k in range(1, 4)])
    bad_id = stored[1][0]
    body = spool.db.execute("SELECT body FROM frames WHERE id = ?", (bad_id,)).fetchone()[0]
    broken = body[:-1] + bytes([body[-1] ^ 0xFF])          # checksum mismatch
    spool.db.execute("UPDATE frames SET body = ? WHERE id = ?", (broken, bad_id))
    sender = SiteSender.__new__(SiteSender)                  # only the decoding step
    sender.site, sender.spool = "site-a", SimpleNamespace(
        set_aside=lambda i, e: asyncio.sleep(0, spool.set_aside(i, e)))
    rows = spool.read("site-a", 0, 10)
    with caplog.at_level(logging.ERROR):
        frames = asyncio.run(sender._decoded(rows))
    assert [i for i, _ in frames] == [stored[0][0], stored[2][0]]
    assert spool.corrupt() == [(bad_id, "site-a", broken, "frame: checksum mismatch")]
    assert spool.count("site-a") == 2
    assert any("undecodable" in r.getMessage() and r.levelno == logging.ERROR
               for r in caplog.records)
    assert hasattr(AsyncSpool, "set_aside")
