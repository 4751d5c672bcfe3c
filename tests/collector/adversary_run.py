"""Running the real collector (Collector: pollers, spool) against adversary.Device servers and
reading back what it spooled (ess.codec), plus the independent checks of every stored block:
an ok block holds exactly the data the device sent in answer to a request of that poll."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from adversary import Device, Fault
from ess.codec import Frame, decode_frame
from ess.sites import parse_sites
from ess_collector.config import collector_settings
from ess_collector.service import Collector
from ess_collector.spool import Spool

SITE = "site-adv"
# block -> (function code, first address, count); one read each
ADV = {"INP": (4, 10, 3), "HOLD": (3, 20, 2), "COILS": (1, 0, 21), "DISC": (2, 100, 11)}
ONE = {"ONE": (3, 0, 4)}
TWO = {"TWO": (3, 0, 8)}       # read as 0+4 and 4+4 (max_registers_per_read 4): one shape
_FUNCTION = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}


def map_doc(map_id: str, blocks: dict) -> dict:
    """A register map with one read per block (unless the read limit splits it): registers
    uint16, int16 alternating; bits."""
    out = []
    for name, (fc, start, count) in blocks.items():
        if fc in (1, 2):
            regs = [{"address": start + k, "table": "bank", "column": f"{name.lower()}_{k}",
                     "type": "bit"} for k in range(count)]
        else:
            regs = [{"address": start + k, "table": "bank", "column": f"{name.lower()}_{k}",
                     "type": "int16" if k % 2 else "uint16"} for k in range(count)]
        out.append({"name": name, "function": _FUNCTION[fc], "start": start, "count": count,
                    "scaled": False, "registers": regs})
    return {"map_id": map_id, "version": 1, "blocks": out}


def expected_values(blocks: dict, name: str, data: bytes | None) -> dict[str, int | None]:
    """Column values of one block from the bytes the device sent (struct, LSB-first bits);
    None: the block failed, every column NULL."""
    fc, _start, count = blocks[name]
    if data is None:
        return {f"{name.lower()}_{k}": None for k in range(count)}
    if fc in (1, 2):
        bits = int.from_bytes(data, "little")
        return {f"{name.lower()}_{k}": bits >> k & 1 for k in range(count)}
    fmt = ">" + "".join("h" if k % 2 else "H" for k in range(count))
    return {f"{name.lower()}_{k}": v for k, v in enumerate(struct.unpack(fmt, data))}


def frame_bits(registers: bytes, count: int) -> bytes:
    """A bit block's frame words (big-endian, bit k in word k // 16 at bit k % 16) as the
    reply's data bytes (bit k in byte k // 8 at bit k % 8)."""
    words = struct.unpack(f">{len(registers) // 2}H", registers)
    value = sum(((words[k // 16] >> (k % 16)) & 1) << k for k in range(count))
    return value.to_bytes(-(-count // 8), "little")


@dataclass
class Case:
    """One device: `faults` at its unit; `status` of the faulted block in the poll it hits
    (a set: any of them), `others` of the unit's other blocks in that poll, `after` of the
    faulted block in the next poll, every other block ok in every poll. Devices of one `group`
    share a server (shared: one connection)."""

    name: str
    framing: str
    faults: tuple[Fault, ...]
    status: frozenset[str]
    map_id: str = "adv"
    group: str = ""
    shared: bool = False
    unit: int | None = None
    others: frozenset[str] = frozenset({"ok"})
    after: frozenset[str] = frozenset({"ok"})
    polling: tuple = ()         # (setting, value) pairs of the device


@dataclass
class Collected:
    """Spooled frames by case (in poll order), (device, unit id) by case, map by case."""

    frames: dict[str, list[Frame]]
    units: dict[str, tuple[Device, int]]
    maps: dict[str, object]


class _HeldPublisher:
    """Every publish fails: frames stay in the spool, where the test reads them."""

    def publish(self, site, bodies, polls_us):
        raise ConnectionError("held in the spool for the test")

    def resume(self, site):
        pass

    def stop(self):
        pass


class DeviceThread:
    """The devices' own event loop in a thread, so the collector's load cannot slow them."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        async def shutdown():
            for t in asyncio.all_tasks() - {asyncio.current_task()}:
                t.cancel()

        self.call(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def collect(tmp: Path, cases: list[Case], *, interval: float, timeout: float,
                  ticks: int, devices_loop: DeviceThread) -> Collected:
    """Serve every case (one server per framing, map and group, unit ids 1..n), run the
    collector for `ticks` polls, and return what it spooled."""
    maps = {"adv": ADV, "one": ONE, "two": TWO}
    for m, blocks in maps.items():
        (tmp / f"{m}.yaml").write_text(yaml.safe_dump(map_doc(m, blocks)))
    devices, units, servers, ports, gateways = [], {}, {}, {}, []
    for i, case in enumerate(cases, 1):
        key = (case.framing, case.map_id, case.group)
        if key not in servers:
            servers[key] = Device(case.framing)
            ports[key] = devices_loop.call(servers[key].start())
            if case.shared:
                gateways.append({"host": "127.0.0.1", "port": ports[key],
                                 "shared_connection": True, "framing": case.framing})
        dev = servers[key]
        unit = case.unit if case.unit is not None else 1 + sum(
            1 for c in cases[:i - 1] if (c.framing, c.map_id, c.group) == key)
        dev.faults[unit] = list(case.faults)
        units[case.name] = (dev, unit)
        devices.append({"host": "127.0.0.1", "port": ports[key], "unit_id": unit, "bank_id": i,
                        "map": str(tmp / f"{case.map_id}.yaml"), **dict(case.polling),
                        **({} if case.shared else {"framing": case.framing})})
    doc = {"sites": [{"site_id": SITE, "devices": devices}],
           "collector": {"topic": "projects/p/topics/t", "interval": interval,
                         "timeout": timeout, "reconnect": {"initial": 0.05, "max": 0.2},
                         "spool": {"path": str(tmp / "spool.sqlite")}, "gateways": gateways,
                         "stats_interval": 60}}
    sites = parse_sites(doc)
    try:
        await Collector(sites, collector_settings(sites, env={}), publisher=_HeldPublisher()
                        ).run(max_ticks=ticks, start_at=time.time() + 0.05, flush_timeout=0.2)
    finally:
        for d in servers.values():
            devices_loop.loop.call_soon_threadsafe(d.close)
    spool = Spool(tmp / "spool.sqlite")
    frames = sorted((decode_frame(row[-1]) for row in spool.read(SITE, 0, 100_000)),
                    key=lambda f: (f.bank_id, f.seq))
    spool.close()
    maps = {d.bank_id: d.map for d in sites.devices()}
    return Collected({c.name: [f for f in frames if f.bank_id == i]
                      for i, c in enumerate(cases, 1)}, units,
                     {c.name: maps[i] for i, c in enumerate(cases, 1)})


def check_block(dev: Device, unit: int, blocks: dict, name: str, frame: Frame) -> str | None:
    """None when the frame's block `name` is right; else what is wrong. Each read of an ok
    block must hold the data of a correct reply the device sent to this unit during this
    poll."""
    b = frame.blocks[name]
    if not b.ok:
        return None if b.registers == b"" else f"{name}: failed block with registers"
    fc, start, count = blocks[name]
    data = frame_bits(b.registers, count) if fc in (1, 2) else b.registers
    reads = sorted(k for k in dev.good if k[:2] == (unit, fc) and start <= k[2] < start + count)
    for _u, _fc, addr, n in reads or [(unit, fc, start, count)]:
        part = data if fc in (1, 2) else data[2 * (addr - start):2 * (addr - start + n)]
        when = [t for t, d in dev.good.get((unit, fc, addr, n), []) if d == part]
        if not when:
            return f"{name} {addr}+{n}: {part.hex()} is no correct reply the device sent"
        if not any(frame.poll_start_us <= t <= frame.poll_end_us for t in when):
            return f"{name} {addr}+{n}: {part.hex()} answered a request of another poll"
    return None


def run(tmp: Path, cases: list[Case], **kw) -> Collected:
    devices = DeviceThread()
    try:
        return asyncio.run(collect(tmp, cases, devices_loop=devices, **kw))
    finally:
        devices.stop()
