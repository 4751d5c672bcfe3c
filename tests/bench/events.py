"""Benchmark of the safety events' cost (issue 22): frames stored/s with events vs without.

The real writer (`ess.db.writer.write_frames`, what ingest's group commit and `ess redecode`
call: rows, then the episodes they can change) stores the same frames with and without events
in one database, a statement of each side in turn (which side goes first alternates), so a
change of load from other work weighs on both sides alike. "Without" replaces, in this process
only, the writer's `batch_touches` with a function that finds nothing to maintain (so its
statement has no lock step, and nothing runs after it); everything else is the product's code.
Ingest's HTTP and Pub/Sub work is the same either way, so the writer's ratio is a lower bound of
ingest's (the events' share of the whole is smaller).

Frames: the simulator's bank model (its status registers 0, a rare warning episode: a healthy
bank), and the same bank with every warning and fault register on all the time (standing
alarms: episodes active across each batch come back from the lock statement as keys only).
"""

from __future__ import annotations

import contextlib
import os
import statistics

from ess.codec import BlockData, Frame
from ess.regmap import load_map

from .status import _database, side_by_side_rounds

T0 = 1_764_000_000


@contextlib.contextmanager
def _no_events():
    """The writer without its events step (this process only; see the module docstring)."""
    import ess.db.writer as writer

    real = writer.batch_touches
    writer.batch_touches = lambda decoded, rewrite=False: []
    try:
        yield
    finally:
        writer.batch_touches = real


def _frames(n: int, standing: bool) -> list[Frame]:
    """n one-second polls of the simulator's bank 1; `standing`: every alarm register on."""
    from ess_collector.simulator.model import BankModel

    m = load_map("default")
    model = BankModel(1, 0, m)
    on = {(f.block, f.address): 1 - int(f.invert) for f in m.fields()
          if any(a.column == f.column and a.table == f.table and not a.is_threshold
                 for a in m.alarms)} if standing else {}
    out = []
    for i in range(n):
        regs = model.registers(T0 + i)
        for (block, address), value in on.items():
            regs[block][address - m.block(block).start] = value
        blocks = {k: BlockData(registers=Frame.registers_to_bytes(v)) for k, v in regs.items()}
        us = (T0 + i) * 1_000_000
        out.append(Frame("site-a", 1, i, us, us + 20_000, m.map_id, m.version, blocks))
    return out


def bench_events_overhead(cluster, rounds: int = 5) -> list[dict]:
    """Frames stored/s by the writer with events vs without: a healthy bank at 1 and 10
    frames a statement, and a bank with standing alarms at 1."""
    m = load_map("default")
    maps = {m.key: m}
    name = f"bench_events_{os.getpid()}"
    _, conn = _database(cluster, name)
    out = []
    try:
        bank = 0
        for label, per, n, standing in (("healthy bank", 1, 600, False),
                                        ("healthy bank", 10, 3000, False),
                                        ("standing alarms", 1, 600, True)):
            rates, bank = side_by_side_rounds(conn, _frames(n, standing), maps, per, rounds,
                                              bank, _no_events)
            ours, without = (statistics.median(rates[s]) for s in ("with", "without"))
            what = f"{per} frame{'s' if per > 1 else ''} per statement, {label}"
            out.append({"figure": f"events overhead: frames stored/s with events vs without "
                        f"({what})", "ours": ours, "baseline": without, "unit": "frames/s",
                        "target": ">= 90% of without", "higher_is_better": True,
                        "note": f"events overhead, {what}: median of {rounds} rounds of {n} "
                                f"frames a side, each statement with events next to one "
                                f"without (alternating which runs first); with "
                                f"{[round(r) for r in rates['with']]}, without "
                                f"{[round(r) for r in rates['without']]} frames/s "
                                f"(ours/without = {ours / without:.1%})"})
    finally:
        conn.close()
        cluster.drop_database(name)
    return out
