"""Frozen detection in the collector and the simulator's frozen and periodic faults."""

from __future__ import annotations

import numpy as np
from ess.codec import BlockData, BlockStatus, Frame
from ess_collector.frozen import FrozenWatch
from ess_collector.simulator.faults import Fault, FaultPlan
from ess_collector.simulator.server import Simulator


def _blocks(value: int) -> dict:
    return {"A": BlockData(registers=Frame.registers_to_bytes([value, 1])),
            "B": BlockData(registers=Frame.registers_to_bytes([2, 3]))}


def test_watch_flags_identical_registers_after_frozen_after():
    w = FrozenWatch(5)
    changes = [w.update(_blocks(1 if t >= 10 else t), float(t)) for t in range(20)]
    assert changes.index("frozen") == 15 and changes.count("frozen") == 1
    assert w.update(_blocks(7), 20.0) == "thawed"
    failing = {**_blocks(1), "B": BlockData(BlockStatus.TIMEOUT)}
    assert all(w.update(failing, float(t)) is None for t in range(21, 40))


def test_simulator_frozen_fault_serves_identical_registers():
    t0 = 1_750_000_000
    plan = FaultPlan([Fault("frozen", bank=2, start=5, end=20)], 0, t0)
    sim = Simulator(banks=2, faults=plan)
    frozen = [sim.raw(2, t0 + t) for t in range(5, 20)]
    assert all(np.array_equal(frozen[0], r) for r in frozen)
    assert not np.array_equal(sim.raw(2, t0 + 20), frozen[0])
    assert not np.array_equal(sim.raw(1, t0 + 6), sim.raw(1, t0 + 7))


def test_periodic_fault_hits_every_nth_second():
    plan = FaultPlan([Fault("exception", bank=1, block="PCS", start=0, every=5)], 0, 100)
    hit = [t for t in range(100, 130) if plan.first("exception", 1, "PCS", t)]
    assert hit == [100, 105, 110, 115, 120, 125]
