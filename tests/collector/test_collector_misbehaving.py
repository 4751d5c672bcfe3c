"""Every reply mismatch through the real collector (Collector: pollers, spool, publisher) against
misbehaving devices on real sockets: the faulted block fails with its own status in the frame,
nothing of the bad reply is stored, the device's other blocks and the next ticks read fine; and
a hung unit behind a shared, paced gateway connection costs the healthy units no tick and causes
no reconnect."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import pytest
from ess.codec import BlockStatus, decode_frames, pack_bodies
from ess.sites import parse_sites
from ess_collector.config import collector_settings
from ess_collector.service import Collector
from ess_collector.simulator.server import Simulator
from misbehaving import Misbehaving
from test_modbus_replies import MBAP, RTU, served_ok

INTERVAL, TIMEOUT, TICKS = 0.3, 0.08, 3


class CapturePublisher:
    """Keeps every frame it is given (after the spool), as Pub/Sub would receive it."""

    def __init__(self):
        self.frames = []

    def publish(self, site, bodies, polls_us):
        self.frames += decode_frames(pack_bodies(bodies))   # the spool's bytes, as sent
        fut = concurrent.futures.Future()
        fut.set_result("id")
        return fut

    def resume(self, site):
        pass

    def stop(self):
        pass


def _config(tmp_path, devices: list[dict], gateways: list[dict] = (),
            timeout: float = TIMEOUT, reconnect: tuple = (0.05, 0.2)) -> tuple:
    doc = {"sites": [{"site_id": "site-m", "devices": devices}],
           "collector": {"topic": "projects/p/topics/t", "interval": INTERVAL,
                         "timeout": timeout,
                         "reconnect": {"initial": reconnect[0], "max": reconnect[1]},
                         "spool": {"path": str(tmp_path / "spool.sqlite")},
                         "gateways": list(gateways), "stats_interval": 60}}
    sites = parse_sites(doc)
    return sites, collector_settings(sites, env={})


async def _collect(sites, settings, ticks: int = TICKS):
    pub = CapturePublisher()
    summary = await Collector(sites, settings, publisher=pub).run(
        max_ticks=ticks, start_at=time.time() + 0.05)
    return pub.frames, summary


def _by_bank(frames) -> dict[int, list]:
    out: dict[int, list] = {}
    for f in sorted(frames, key=lambda f: f.poll_start_us):
        out.setdefault(f.bank_id, []).append(f)
    return out


@pytest.mark.slow       # real ticks: ~1 s
def test_every_mismatch_through_the_collector(tmp_path):
    kinds = [("tcp", k, s) for k, s in MBAP.items()] + [("rtu", k, s) for k, s in RTU.items()]
    sim = Simulator(len(kinds), 0)

    async def go():
        devs = {f: Misbehaving(sim, f) for f in ("tcp", "rtu")}
        ports = {f: await d.start() for f, d in devs.items()}
        devices = []
        for unit, (framing, kind, _) in enumerate(kinds, 1):
            devs[framing].inject(kind, unit=unit, address=500)
            devices.append({"host": "127.0.0.1", "port": ports[framing], "unit_id": unit,
                            "bank_id": unit, "framing": framing})
        try:
            return await _collect(*_config(tmp_path, devices), ticks=2)
        finally:
            for d in devs.values():
                d.close()

    frames, summary = asyncio.run(go())
    banks = _by_bank(frames)
    assert sorted(banks) == list(range(1, len(kinds) + 1)) and summary.missed_ticks == 0
    for unit, (framing, kind, status) in enumerate(kinds, 1):
        first, *rest = banks[unit]
        assert [f.seq for f in banks[unit]] == [1, 2]
        assert first.blocks["PCS"].status == status, (framing, kind, first.blocks["PCS"].status)
        assert all(first.blocks[n].ok for n in ("BMS1", "BMS2", "ETC")), (framing, kind)
        for f in banks[unit]:
            served_ok(sim, unit, f.blocks, f.poll_start_us, f.poll_end_us)
        for f in rest:                                  # recovered on the next tick
            assert all(b.ok for b in f.blocks.values()), (framing, kind, f.seq)


@pytest.mark.slow       # real ticks: ~2 s
def test_a_hung_unit_behind_a_shared_paced_gateway_costs_the_others_nothing(tmp_path):
    units = 4
    sim = Simulator(units, 0)

    async def go(framing: str):
        dev = Misbehaving(sim, framing)
        port = await dev.start()
        dev.inject("hang", unit=2, times=10_000)        # unit 2 never answers
        dev.inject("late", unit=3, address=500, times=10_000)   # unit 3's PCS replies late
        devices = [{"host": "127.0.0.1", "port": port, "unit_id": u, "bank_id": u}
                   for u in range(1, units + 1)]
        gateway = {"host": "127.0.0.1", "port": port, "shared_connection": True,
                   "framing": framing, "pause_between_requests": 0.002,
                   "pause_after_connect": 0.005}
        try:
            # unit 2 demoted for 0.4 s after its timeout, ticks 0.3 s apart
            frames, summary = await _collect(
                *_config(tmp_path / framing, devices, [gateway], reconnect=(0.4, 2.0)),
                ticks=TICKS)
            return frames, summary, dev
        finally:
            dev.close()

    for framing in ("tcp", "rtu"):
        (tmp_path / framing).mkdir()
        frames, summary, dev = asyncio.run(go(framing))
        banks = _by_bank(frames)
        # a reconnect per probe of a misbehaving unit (ticks 1 and 3), not one per tick
        assert dev.connections <= 1 + 2 * 2, framing
        assert summary.missed_ticks == 0
        for u in (1, 3, 4):
            assert len(banks[u]) == TICKS
            for f in banks[u]:
                late = {"PCS"} if u == 3 else set()     # its late replies answer nothing
                assert {n for n, b in f.blocks.items() if not b.ok} == late, (framing, u, f.seq)
                assert all(f.blocks[n].status == BlockStatus.TIMEOUT for n in late)
                served_ok(sim, u, f.blocks, f.poll_start_us, f.poll_end_us)
        for f in banks[2]:                  # never an ok block; asked on probes only
            assert all(b.status == BlockStatus.TIMEOUT for b in f.blocks.values()), framing
        # not asked while demoted: once, and again at tick 3 if its back-off (from its timeout
        # in tick 1, which depends on its turn) has passed by then
        assert 1 <= len([r for r in dev.requests if r[0] == 2]) <= 2, framing
