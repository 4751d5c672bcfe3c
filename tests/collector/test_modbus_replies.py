"""Reply acceptance against a misbehaving device on a real socket (tests/collector/misbehaving.py):
each way a reply can fail to answer its request fails that block with its own status, nothing of
it is stored, the other blocks are read, and the next poll reads everything again."""

from __future__ import annotations

import asyncio
import time

import pytest
from ess.codec import BlockStatus
from ess.regmap import load_map
from ess.sites import Device
from ess_collector.modbus import DevicePoller, Pacing
from ess_collector.simulator.server import Simulator
from misbehaving import POISON, Misbehaving

MAP = load_map("default")
TIMEOUT = 0.1
MISMATCHED, TIMEOUT_, OK = (BlockStatus.MISMATCHED_REPLY, BlockStatus.TIMEOUT, BlockStatus.OK)

# kind -> status of the faulted block (PCS, one read of 500+89)
MBAP = {"function": MISMATCHED, "tid": MISMATCHED, "tid0": MISMATCHED, "unit": MISMATCHED,
        "byte_count": MISMATCHED, "count": MISMATCHED, "late": TIMEOUT_, "restamp": TIMEOUT_,
        "extra_first": OK, "extra_after": OK, "hang": TIMEOUT_}
# RTU has no transaction id: a stale frame of the answer's shape next to the answer, in either
# order, leaves the answer in doubt
RTU = {"function": MISMATCHED, "unit": MISMATCHED, "byte_count": MISMATCHED,
       "count": MISMATCHED, "late": TIMEOUT_, "restamp": TIMEOUT_, "extra_first": MISMATCHED,
       "extra_after": MISMATCHED, "bad_crc": BlockStatus.BAD_CRC, "hang": TIMEOUT_}


def served_ok(sim: Simulator, bank: int, blocks: dict, start_us: int, end_us: int) -> None:
    """Every ok block holds what the device served in the poll's second; never POISON."""
    seconds = {start_us // 1_000_000, end_us // 1_000_000}
    for name, b in blocks.items():
        if not b.ok:
            assert b.registers == b""
            continue
        assert POISON not in b.values(), name
        assert any(b.values() == sim.registers_at(bank, t)[name] for t in seconds), name


async def _poll_twice(framing: str, kind: str) -> tuple:
    sim = Simulator(1, 0)
    dev = Misbehaving(sim, framing)
    port = await dev.start()
    poller = DevicePoller(Device("site-a", "127.0.0.1", port, 1, 1, MAP), TIMEOUT, 0.05, 0.2,
                          pacing=Pacing(framing))
    try:
        dev.inject(kind, unit=1, address=500)
        first = await poller.poll(time.monotonic() + 0.8)
        second = await poller.poll(time.monotonic() + 0.8)
        return sim, first, second, dev
    finally:
        poller.close()
        dev.close()


@pytest.mark.parametrize(("framing", "kind", "status"),
                         [("tcp", k, s) for k, s in MBAP.items()]
                         + [("rtu", k, s) for k, s in RTU.items()])
def test_each_misbehaviour_fails_its_block_and_the_next_poll_recovers(framing, kind, status):
    sim, (blocks, t0, t1), (again, u0, u1), dev = asyncio.run(_poll_twice(framing, kind))
    assert blocks["PCS"].status == status, blocks["PCS"].describe()
    assert all(blocks[n].ok for n in ("BMS1", "BMS2", "ETC")), {
        n: b.describe() for n, b in blocks.items()}
    served_ok(sim, 1, blocks, t0, t1)
    assert all(b.ok for b in again.values()), {n: b.describe() for n, b in again.items()}
    served_ok(sim, 1, again, u0, u1)
    # a failed request closes the connection (a timeout too: its late reply must not come on
    # it), once; two replies in one read cost nothing
    assert dev.connections == (1 if status == OK else 2)

def test_transaction_ids_are_unique_and_never_zero_across_reconnects():
    async def go():
        sim = Simulator(1, 0)
        dev = Misbehaving(sim)
        seen = []
        real = dev.replies

        def spy(tid, *rest):
            seen.append(tid)
            return real(tid, *rest)

        dev.replies = spy
        port = await dev.start()
        poller = DevicePoller(Device("s", "127.0.0.1", port, 1, 1, MAP), TIMEOUT, 0.05, 0.2)
        dev.inject("unit", unit=1, address=500)          # a reset in the middle
        for _ in range(2):
            await poller.poll(time.monotonic() + 0.8)
        poller.close()
        dev.close()
        return seen, dev.connections

    seen, connections = asyncio.run(go())
    assert connections == 2 and len(seen) == 14
    assert 0 not in seen and len(set(seen)) == len(seen)
