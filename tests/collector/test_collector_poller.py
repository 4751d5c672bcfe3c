"""DevicePoller against the real simulator (in-process servers): faults, statuses, back-off."""

from __future__ import annotations

import asyncio
import time

from collector_support import free_ports
from ess.codec import BlockStatus
from ess.decode import decoder_for
from ess.regmap import load_map
from ess.sites import Device
from ess_collector.modbus import DevicePoller
from ess_collector.simulator.faults import Fault, FaultPlan
from ess_collector.simulator.model import registers_at
from ess_collector.simulator.server import Simulator, start_servers

MAP = load_map("default")


def _device(port: int, bank: int = 1) -> Device:
    return Device("site-a", "127.0.0.1", port, 1, bank, MAP)


async def _with_sim(faults: list[Fault], banks: int, body) -> None:
    sim = Simulator(banks, 0, FaultPlan(faults, 0, time.time()))
    port = free_ports(banks)
    servers = await start_servers(sim, port)
    try:
        await body(sim, port)
    finally:
        for s in servers:
            await s.shutdown()


async def _poll_within_second(poller: DevicePoller):
    for _ in range(3):
        blocks, start, end = await poller.poll(time.monotonic() + 0.9)
        if start // 1_000_000 == end // 1_000_000:
            return blocks, start // 1_000_000
    raise AssertionError("polls keep crossing second boundaries")


def test_drop_slow_wild_frozen():
    faults = [Fault("drop", bank=1, block="PCS"), Fault("slow", bank=2, delay=0.05),
              Fault("wild", bank=3, block="BMS1", count=3), Fault("frozen", bank=4)]

    async def body(sim, port):
        dropped = DevicePoller(_device(port, 1), 0.5)
        blocks, t = await _poll_within_second(dropped)
        assert blocks["PCS"].status == BlockStatus.TRANSPORT
        assert blocks["ETC"].ok and blocks["ETC"].values() == registers_at(1, t)["ETC"]
        slow = DevicePoller(_device(port + 1, 2), 0.5)
        begin = time.monotonic()
        blocks, t = await _poll_within_second(slow)
        assert time.monotonic() - begin >= 7 * 0.05
        assert all(b.ok for b in blocks.values())
        wild = DevicePoller(_device(port + 2, 3), 0.5)
        blocks, t = await _poll_within_second(wild)
        got = {n: b.values() for n, b in blocks.items()}
        assert got == sim.registers_at(3, t) and got["BMS1"] != registers_at(3, t)["BMS1"]
        frozen = DevicePoller(_device(port + 3, 4), 0.5)
        first, _ = await _poll_within_second(frozen)
        await asyncio.sleep(1.05)
        second, _ = await _poll_within_second(frozen)
        assert first["BMS1"].registers == second["BMS1"].registers
        for p in (dropped, slow, wild, frozen):
            p.close()

    asyncio.run(_with_sim(faults, 4, body))


def test_wild_values_are_flagged_out_of_range_by_the_decoder():
    sim = Simulator(1, 0, FaultPlan([Fault("wild", bank=1, block="BMS1", count=20)], 0, 0))
    flagged = sum(len(r["out_of_range"]) for t in range(100, 110)
                  for r in decoder_for(MAP).decode(sim.registers_at(1, t)))
    assert flagged > 0


def test_refused_connections_back_off_exponentially_to_the_cap():
    async def go():
        port = free_ports(1)                 # nothing listens there
        poller = DevicePoller(_device(port), 0.2, reconnect_initial=0.1, reconnect_max=0.4)
        seen = []
        for _ in range(5):
            poller.next_connect = 0.0        # let each poll try to connect
            blocks, _, _ = await poller.poll(time.monotonic() + 0.5)
            assert {b.status for b in blocks.values()} == {BlockStatus.TRANSPORT}
            seen.append(poller.backoff)
        assert seen == [0.1, 0.2, 0.4, 0.4, 0.4]
        # while backing off, a poll does not even try (and returns at once)
        begin = time.monotonic()
        blocks, _, _ = await poller.poll(time.monotonic() + 0.5)
        assert time.monotonic() - begin < 0.05
        assert {b.status for b in blocks.values()} == {BlockStatus.TRANSPORT}

    asyncio.run(go())
