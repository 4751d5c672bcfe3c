"""The simulator's server for any map: one store per function, reads answered by function and
address, every block read back (over real Modbus TCP) as `registers_at` says it was served."""

from __future__ import annotations

import asyncio
import time

import pytest
from ess.plan import read_plan
from ess.regmap import load_map
from ess.sites import Device
from ess_collector.modbus import DevicePoller
from ess_collector.simulator.faults import Fault, FaultPlan
from ess_collector.simulator.server import Simulator, free_port_range, start_servers
from pymodbus.client import AsyncModbusTcpClient


def _read(regmap, frame_words: dict[str, list[int]]) -> dict[str, list[int]]:
    """The words (or bits) of each block at the addresses the read plan reads (the collector
    leaves the rest 0)."""
    out = {}
    for b in regmap.blocks:
        words = frame_words[b.name]
        at = [a - b.start for r in read_plan(regmap) if r.block == b.name
              for a in range(r.address, r.address + r.count)]
        out[b.name] = [words[k // 16] >> k % 16 & 1 if b.is_bits else words[k] for k in at]
    return out


async def _serving(name: str, faults: list[Fault] = ()):
    regmap = load_map(name)
    sim = Simulator(1, 0, FaultPlan(list(faults), 0, time.time()), regmap)
    port = free_port_range(1)
    return sim, port, await start_servers(sim, port)


MAPS = ["default", "examples/pcs-meter", "examples/sunspec-802"]


async def _poll_each_second(name: str, seconds: int) -> list[tuple[dict, dict]]:
    """(read back, served at that second) per poll: one poll early in each of `seconds`."""
    # wild: random words (and bits) in every block, so packed bits are not all zero
    sim, port, servers = await _serving(name, [Fault("wild", count=8)])
    poller = DevicePoller(Device("s", "127.0.0.1", port, 1, 1, sim.map), 1.0)
    out = []
    try:
        for _ in range(seconds):
            await asyncio.sleep(1.05 - time.time() % 1)     # poll early in a second
            blocks, start, end = await poller.poll(time.monotonic() + 0.5)
            assert start // 1_000_000 == end // 1_000_000
            served = sim.registers_at(1, start // 1_000_000)
            got = {n: b.values() for n, b in blocks.items()}
            out.append((_read(sim.map, got), _read(sim.map, served)))
    finally:
        poller.close()
        for s in servers:
            await s.shutdown()
    return out


@pytest.fixture(scope="module")
def polled() -> dict[str, list[tuple[dict, dict]]]:
    """Three seconds of polls of every map, the maps served side by side (3 s, not 9)."""
    async def go():
        return await asyncio.gather(*(_poll_each_second(name, 3) for name in MAPS))

    return dict(zip(MAPS, asyncio.run(go())))


@pytest.mark.parametrize("name", MAPS)
def test_polls_read_back_what_was_served(name, polled):
    assert len(polled[name]) == 3
    for got, served in polled[name]:
        assert got == served


def test_functions_have_their_own_address_spaces():
    async def go():
        sim, port, servers = await _serving("examples/pcs-meter")
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        try:
            await client.connect()
            holding = await client.read_holding_registers(0, count=4, device_id=1)
            assert not holding.isError()
            assert (await client.read_input_registers(0, count=4, device_id=1)).isError()
            assert not (await client.read_input_registers(200, count=4, device_id=1)).isError()
            past = await client.read_holding_registers(30, count=8, device_id=1)
            assert past.isError() and past.exception_code == 2
            before = int(time.time())
            coils = await client.read_coils(0, count=20, device_id=1)
            assert coils.bits[:20] in [[bool(b) for b in sim.stores(1, t)["RELAYS"]]
                                       for t in range(before, int(time.time()) + 1)]
            assert (await client.read_coils(100, count=1, device_id=1)).isError()
            assert not (await client.read_discrete_inputs(0, count=8, device_id=1)).isError()
        finally:
            client.close()
            for s in servers:
                await s.shutdown()

    asyncio.run(go())
