"""The events table in real databases (TimescaleDB and plain PostgreSQL): the same frames of
the default map delivered in poll order one at a time, or shuffled, duplicated and in random
batches, give exactly the same episodes; a redelivery changes nothing and raises nothing."""

from __future__ import annotations

import random

import pytest
from ess.codec import BlockData, BlockStatus, Frame
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.writer import write_frames
from ess.decode import decoder_for
from ess.events.states import touches
from ess.events.store import maintain
from ess.regmap import load_map

M = load_map("default")
SITE, T0 = "site-e", 1_750_000_000
INVERTED = [221, 222, 223, 224, 225, 226, 227, 228, 229, 233]   # device polarity: OK = 1
RACK2_OVER_TEMP = 252 + 29          # rack 2's rack_rack_over_temperature_fault
MISSING = {16, 17}                  # never polled: a gap


def _frame(t: int) -> Frame:
    regs = {b.name: [0] * b.count for b in M.blocks}
    for a in INVERTED:
        regs["BMS2"][a - 200] = 1
    regs["BMS2"][210 - 200] = int(5 <= t <= 12 or t >= 30)      # bank: rack over-temp fault
    regs["BMS2"][RACK2_OVER_TEMP - 200] = int(8 <= t <= 20)
    regs["BMS1"][19] = 400 if t < 3 else 520 if t <= 18 else 430 if t <= 22 else 410  # rack 1
    blocks = {n: BlockData(registers=Frame.registers_to_bytes(r)) for n, r in regs.items()}
    if t == 15:
        blocks["BMS2"] = BlockData(BlockStatus.TIMEOUT)
    us = (T0 + t) * 1_000_000
    return Frame(SITE, 1, t, us, us + 30_000, M.map_id, M.version, blocks)


FRAMES = [_frame(t) for t in range(40) if t not in MISSING]
# (alarm, rack, since, raised, raised value, cleared, cleared value), times in s after T0
EXPECTED = [
    ("rack_cell_temperature_high", 1, 3, 13, 52.0, 23, 41.0),
    ("rack_over_temperature_fault", None, 5, 5, 1.0, 13, 0.0),
    ("rack_over_temperature_fault", None, 30, 30, 1.0, None, None),
    ("rack_rack_over_temperature_fault", 2, 8, 8, 1.0, 21, 0.0),
]


def _deliver(conn, frames: list[Frame]) -> list:
    """Write a batch as ingest does, then maintain its events in one transaction."""
    write_frames(conn, frames, {M.key: M})
    tables, _ = decoder_for(M).decode_frames(frames)
    conn.autocommit = False
    raised = maintain(conn, M, touches(M, frames, tables))
    conn.commit()
    return raised


def _events(conn) -> list[tuple]:
    cur = conn.cursor()
    cur.execute("SELECT alarm, rack_id, extract(epoch FROM since)::bigint, "
                "extract(epoch FROM raised)::bigint, raised_value, "
                "extract(epoch FROM cleared)::bigint, cleared_value, severity, site_id, bank_id "
                "FROM events ORDER BY alarm, rack_id, since")
    rows = cur.fetchall()
    conn.rollback()
    assert {(r[7], r[8], r[9]) for r in rows} <= {("fault", SITE, 1), ("warning", SITE, 1)}
    return [(a, rack, s - T0, r - T0, rv, None if c is None else c - T0, cv)
            for a, rack, s, r, rv, c, cv, *_ in rows]


@pytest.mark.parametrize("db", ["timescale_db", "plain_db"])
def test_in_order_shuffled_and_duplicated_deliveries_give_the_same_episodes(db, request):
    conn = connect_dsn(request.getfixturevalue(db))
    try:
        migrate(conn, [M])
        raised = []
        for f in FRAMES:                          # live: one poll at a time
            raised += _deliver(conn, [f])
        assert _events(conn) == EXPECTED
        assert len(raised) == len(EXPECTED), "one raise per episode"
        assert _deliver(conn, FRAMES) == [], "a redelivery raises nothing"
        assert _events(conn) == EXPECTED
        cur = conn.cursor()
        cur.execute("TRUNCATE events")
        for t in ("bank", "rack", "pcs", "etc", "frames"):
            cur.execute(f"DELETE FROM {t}")
        conn.commit()
        rng = random.Random(22)
        late = FRAMES + rng.sample(FRAMES, 12)
        rng.shuffle(late)
        raised = []
        while late:
            n = rng.randint(1, 5)
            raised += _deliver(conn, late[:n])
            late = late[n:]
        assert _events(conn) == EXPECTED
        assert {(e.alarm, e.rack) for e in raised} >= {(a, r) for a, r, *_ in EXPECTED}
    finally:
        conn.close()
