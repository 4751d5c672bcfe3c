"""A fast simulator for the collector benchmarks: a minimal asyncio FC4-only Modbus TCP server.

It serves the product simulator's values (`ess_collector.simulator.server.Simulator`, faults
included) for hundreds of banks, where pymodbus' server costs several ms per poll. Layouts as
the product simulator: one port per bank (default) or one port with unit id k = bank k.

    python -P tests/bench/collector_sim.py --port P --banks N [--seed S] [--units] [--latency L]
prints `READY <t0>` once listening (so `SimulatorProcess(command=COMMAND)` can start it).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import signal
import struct
import sys
import time
from pathlib import Path

from ess_collector.simulator.faults import FaultPlan
from ess_collector.simulator.server import LOCALHOST, Simulator

COMMAND = (sys.executable, "-P", str(Path(__file__).resolve()))
_MBAP = struct.Struct(">HHHB")
_REQ = struct.Struct(">BHH")


class _FastProtocol(asyncio.Protocol):
    def __init__(self, sim: Simulator, bank: int | None, latency: float = 0.0):
        self.sim, self.bank, self.buf, self.transport = sim, bank, b"", None
        self.latency = latency            # > 0: one request at a time, each taking this long
        self.queue: asyncio.Queue | None = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 7:
            tid, _pid, length, unit = _MBAP.unpack_from(self.buf)
            if len(self.buf) < 6 + length:
                return
            pdu, self.buf = self.buf[7:6 + length], self.buf[6 + length:]
            bank = self.bank if self.bank is not None else unit
            if len(pdu) != 5 or pdu[0] != 4:
                self._reply(tid, unit, bytes([(pdu[:1] or b"\0")[0] | 0x80, 1]))
                continue
            _fc, address, count = _REQ.unpack(pdu)
            if self.latency:
                if self.queue is None:
                    self.queue = asyncio.Queue()
                    asyncio.get_running_loop().create_task(self._serial())
                self.queue.put_nowait((tid, unit, bank, address, count))
                continue
            asyncio.get_running_loop().create_task(self._serve(tid, unit, bank, address, count))

    async def _serial(self):
        """Like a gateway in front of a serial line: requests one after another."""
        while not self.transport.is_closing():
            req = await self.queue.get()
            await asyncio.sleep(self.latency)
            await self._serve(*req)

    async def _serve(self, tid, unit, bank, address, count):
        kind, payload = await self.sim.answer(bank, address, count)
        if kind == "drop":
            self.transport.close()
        elif kind == "exception":
            self._reply(tid, unit, bytes([0x84, payload]))
        else:
            self._reply(tid, unit, bytes([4, len(payload)]) + payload)

    def _reply(self, tid, unit, pdu: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(_MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu)


async def start_fast_servers(sim: Simulator, port: int, *, units: bool = False,
                             host: str = LOCALHOST, latency: float = 0.0
                             ) -> list[asyncio.Server]:
    """Start listening (asyncio servers; close them to stop). `latency` (units layout): each
    connection answers one request at a time, `latency` s each (a serial gateway)."""
    loop = asyncio.get_running_loop()
    if units:
        return [await loop.create_server(lambda: _FastProtocol(sim, None, latency), host, port)]
    return [await loop.create_server(functools.partial(_FastProtocol, sim, b), host, port + b - 1)
            for b in sim.models]


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    t0 = time.time()
    sim = Simulator(args.banks, args.seed, FaultPlan([], args.seed, t0))
    servers = await start_fast_servers(sim, args.port, units=args.units, latency=args.latency)
    prefetch = asyncio.create_task(sim.prefetch_forever())
    print(f"READY {t0!r}", flush=True)
    await stop.wait()
    prefetch.cancel()
    for s in servers:
        s.close()


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT (no faults: the benchmarks measure healthy banks)."""
    p = argparse.ArgumentParser(prog="collector_sim")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--banks", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--units", action="store_true")
    p.add_argument("--latency", type=float, default=0.0,
                   help="seconds per request, one request at a time per connection")
    asyncio.run(_serve(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
