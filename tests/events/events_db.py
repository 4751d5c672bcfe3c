"""Frames of the default map with a bank fault, a rack fault and a cell temperature over its
threshold (with a failed block and a gap), their episodes, and delivery as ingest does it."""

from __future__ import annotations

import threading

from ess.codec import BlockData, BlockStatus, Frame
from ess.db.writer import write_frames
from ess.regmap import load_map

M = load_map("default")
SITE, T0 = "site-e", 1_750_000_000
INVERTED = [221, 222, 223, 224, 225, 226, 227, 228, 229, 233]   # device polarity: OK = 1
RACK2_OVER_TEMP = 252 + 29          # rack 2's rack_rack_over_temperature_fault
MISSING = {16, 17}                  # never polled: a gap


def default_frame(t: int, bank_fault: bool | None = None) -> Frame:
    """The poll at T0 + t s; `bank_fault` overrides the bank's over-temperature fault."""
    regs = {b.name: [0] * b.count for b in M.blocks}
    for a in INVERTED:
        regs["BMS2"][a - 200] = 1
    regs["BMS2"][210 - 200] = int(5 <= t <= 12 or t >= 30 if bank_fault is None else bank_fault)
    regs["BMS2"][RACK2_OVER_TEMP - 200] = int(8 <= t <= 20)
    regs["BMS1"][19] = 400 if t < 3 else 520 if t <= 18 else 430 if t <= 22 else 410  # rack 1
    blocks = {n: BlockData(registers=Frame.registers_to_bytes(r)) for n, r in regs.items()}
    if t == 15:
        blocks["BMS2"] = BlockData(BlockStatus.TIMEOUT)
    us = (T0 + t) * 1_000_000
    return Frame(SITE, 1, t, us, us + 30_000, M.map_id, M.version, blocks)


FRAMES = [default_frame(t) for t in range(40) if t not in MISSING]
# (alarm, rack, since, raised, raised value, cleared, cleared value), times in s after T0
EXPECTED = [
    ("rack_cell_temperature_high", 1, 3, 13, 52.0, 23, 41.0),
    ("rack_over_temperature_fault", None, 5, 5, 1.0, 13, 0.0),
    ("rack_over_temperature_fault", None, 30, 30, 1.0, None, None),
    ("rack_rack_over_temperature_fault", 2, 8, 8, 1.0, 21, 0.0),
]


def deliver(conn, frames: list[Frame], maps: list = (M,)) -> list:
    """Write a batch as ingest and redecode do (rows, then their episodes); the episodes
    raised."""
    return write_frames(conn, frames, {m.key: m for m in maps}).raised


def deliver_concurrently(dsn: str, plans: list[list[list[Frame]]]) -> list:
    """Each plan's batches delivered in turn on a connection of its own, all plans at once (as
    concurrent ingest requests and both writers do); the episodes raised."""
    from ess.db.connect import connect_dsn

    raised, errors = [], []

    def run(batches):
        c = connect_dsn(dsn)
        try:
            for b in batches:
                raised.extend(deliver(c, b))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return raised
