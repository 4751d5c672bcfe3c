"""The spool: sequence numbers survive reopening; bounds drop oldest frames with an ERROR."""

from __future__ import annotations

import json
import logging

from ess.codec import BlockData, Frame, decode_frame
from ess_collector.spool import Spool


def _frame(bank: int, t_us: int) -> Frame:
    return Frame("site-a", bank, 0, t_us, t_us + 5000, "default", 1,
                 {"ETC": BlockData(registers=Frame.registers_to_bytes([1, 2, 3, 0, 5]))})


def test_sequence_numbers_survive_reopen(tmp_path):
    s = Spool(tmp_path / "s.sqlite")
    stored = s.append([_frame(1, 1_000_000), _frame(2, 1_000_000), _frame(1, 2_000_000)])
    assert [x.frame.seq for x in stored] == [1, 1, 2]
    s.delete([x.id for x in stored])
    s.close()
    s = Spool(tmp_path / "s.sqlite")
    assert s.count() == 0
    assert [x.frame.seq for x in s.append([_frame(1, 3_000_000)])] == [3]
    (i, poll_us, body), = s.read("site-a", 0, 10)
    assert decode_frame(body).seq == 3 and poll_us == 3_000_000


def test_bounds_drop_oldest_and_log_error(tmp_path, caplog):
    s = Spool(tmp_path / "s.sqlite", max_bytes=10_000, max_age=3600)
    now = 1_800_000_000.0
    s.append([_frame(1, int((now - 7200) * 1e6)), _frame(1, int((now - 7100) * 1e6))])
    s.append([_frame(1, int((now - t) * 1e6)) for t in range(200, 0, -1)])
    with caplog.at_level(logging.ERROR, logger="ess_collector.spool"):
        dropped = s.enforce_bounds(now)
    assert dropped[0].count == 2 and "older than" in dropped[0].reason
    assert dropped[1].count > 0 and s.total_bytes <= 10_000
    assert s.count() == 200 - dropped[1].count
    rec = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(rec) == 2
    fields = rec[1].json_fields
    assert fields["frames"] == dropped[1].count and fields["first_poll"] < fields["last_poll"]
    json.dumps(fields)
    # what is left is the newest, oldest first
    rows = s.read("site-a", 0, 1000)
    polls = [decode_frame(b).poll_start_us for _, _, b in rows]
    assert polls == sorted(polls) and polls[-1] == int((now - 1) * 1e6)
