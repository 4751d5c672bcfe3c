"""The simulator's Modbus TCP server: one port per bank (default) or one unit id per bank.

Layouts:
  * ports (default): bank k listens on `port + k - 1` and answers unit id 1 (the spec's one server
    per bank).
  * units: every bank on `port`, bank k answers unit id k (a gateway in front of the banks).
Engines:
  * pymodbus (default): pymodbus' asyncio ModbusTcpServer with a SimDevice per bank.
  * fast: a minimal asyncio FC4-only server (same values and faults) for benchmarks with hundreds
    of banks, where pymodbus' server costs several ms per poll.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import struct
import subprocess
import sys
import time
from collections import OrderedDict

import numpy as np
from ess.logs import event
from ess.regmap import RegisterMap, load_map

from .faults import FaultPlan, load_faults
from .model import BankModel

log = logging.getLogger(__name__)
LOCALHOST = "127.0.0.1"


class Simulator:
    """Banks 1..n with a fault plan; `registers_at(bank, t)` is what is served during second t."""

    def __init__(self, banks: int = 1, seed: int = 0, faults: FaultPlan | None = None,
                 regmap: RegisterMap | None = None):
        self.map = regmap or load_map("default")
        self.seed = seed
        self.models = {b: BankModel(b, seed, self.map) for b in range(1, banks + 1)}
        self.faults = faults or FaultPlan([], seed, time.time())
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._block_of = {}
        for b in self.map.blocks:
            for a in range(b.start, b.end):
                self._block_of[a] = b

    def raw(self, bank: int, t: int) -> np.ndarray:
        """All registers of `bank` during second `t`, faults (wild, frozen) applied."""
        key = (bank, t)
        out = self._cache.get(key)
        if out is None:
            src = self.faults.frozen_at(bank, t)
            out = self.faults.apply_values(bank, t, self.models[bank].raw(src), self.map.blocks)
            self._cache[key] = out
            if len(self._cache) > 4 * len(self.models) + 16:
                self._cache.popitem(last=False)
        return out

    async def prefetch_forever(self, lead: float = 0.4) -> None:
        """Compute every bank's registers for the next second ahead of time (keeps replies fast
        at the top of each second, when every collector polls)."""
        while True:
            now = time.time()
            nxt = int(now) + 1
            await asyncio.sleep(max(0.0, nxt - lead - now))
            for i, bank in enumerate(self.models):
                self.raw(bank, nxt)
                if i % 16 == 15:
                    await asyncio.sleep(0)

    def registers_at(self, bank: int, t: int) -> dict[str, list[int]]:
        """Blocks as served during second `t` (equal to model.registers_at without faults)."""
        raw = self.raw(bank, int(t))
        return {b.name: raw[b.start:b.end].tolist() for b in self.map.blocks}

    async def answer(self, bank: int, address: int, count: int) -> tuple[str, object]:
        """Decide a read's outcome: ("ok", bytes), ("exception", code) or ("drop", None)."""
        t = int(time.time())
        block = self._block_of.get(address)
        if block is None or bank not in self.models or address + count > block.end:
            return "exception", 2
        name = block.name
        for kind in ("slow", "timeout"):
            f = self.faults.first(kind, bank, name, t)
            if f is not None:
                await asyncio.sleep(f.delay)
        f = self.faults.first("exception", bank, name, t)
        if f is not None:
            return "exception", f.code
        if self.faults.first("drop", bank, name, t) is not None:
            return "drop", None
        regs = self.raw(bank, t)[address:address + count]
        return "ok", regs.astype(">u2").tobytes()


# ---- pymodbus engine ------------------------------------------------------------------------
async def _pymodbus_servers(sim: Simulator, port: int, units: bool, host: str) -> list:
    from pymodbus.constants import ExcCodes
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    servers: list = []

    async def action(bank, fc, start_address, address, count, registers, values):
        kind, payload = await sim.answer(bank, address, count)
        if kind == "exception":
            return ExcCodes(payload)
        if kind == "drop":
            server = servers[0] if units else servers[bank - 1]
            for conn in list(server.active_connections.values()):
                conn.close()
            return ExcCodes.DEVICE_BUSY
        off = address - start_address
        registers[off:off + count] = np.frombuffer(payload, ">u2").tolist()
        return None

    def device(bank: int, unit: int):
        data = [SimData(b.start, count=b.count, values=0, datatype=DataType.REGISTERS)
                for b in sim.map.blocks]
        return SimDevice(unit, simdata=data, action=functools.partial(action, bank))

    if units:
        groups = [(port, [device(b, b) for b in sim.models])]
    else:
        groups = [(port + b - 1, device(b, 1)) for b in sim.models]
    for p, ctx in groups:
        server = ModbusTcpServer(ctx, address=(host, p))
        await server.serve_forever(background=True)
        servers.append(server)
    return servers


# ---- fast engine ----------------------------------------------------------------------------
_MBAP = struct.Struct(">HHHB")
_REQ = struct.Struct(">BHH")


class _FastProtocol(asyncio.Protocol):
    def __init__(self, sim: Simulator, bank: int | None):
        self.sim, self.bank, self.buf, self.transport = sim, bank, b"", None

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
            asyncio.get_running_loop().create_task(self._serve(tid, unit, bank, address, count))

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


async def _fast_servers(sim: Simulator, port: int, units: bool, host: str) -> list:
    loop = asyncio.get_running_loop()
    if units:
        return [await loop.create_server(lambda: _FastProtocol(sim, None), host, port)]
    return [await loop.create_server(functools.partial(_FastProtocol, sim, b), host, port + b - 1)
            for b in sim.models]


def free_port_range(n: int, host: str = LOCALHOST) -> int:
    """First of `n` consecutive TCP ports on `host` that are free right now (below the
    ephemeral range, so outgoing connections do not take them meanwhile)."""
    import random
    import socket

    for _ in range(200):
        base = random.randrange(12000, 32000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind((host, p))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {n} consecutive free ports")


# ---- running --------------------------------------------------------------------------------
async def start_servers(sim: Simulator, port: int, *, units: bool = False, engine: str = "pymodbus",
                        host: str = LOCALHOST) -> list:
    """Start listening (returns the server objects; they serve until closed)."""
    starter = _fast_servers if engine == "fast" else _pymodbus_servers
    return await starter(sim, port, units, host)


async def run_simulator(port: int, banks: int = 1, *, seed: int = 0, faults_path=None,
                        units: bool = False, engine: str = "pymodbus", host: str = LOCALHOST,
                        stop: asyncio.Event | None = None, ready=None) -> None:
    """Serve until `stop` is set (or forever); `ready(t0)` is called once listening."""
    plan = load_faults(faults_path, seed, time.time())
    sim = Simulator(banks, seed, plan)
    servers = await start_servers(sim, port, units=units, engine=engine, host=host)
    prefetch = asyncio.create_task(sim.prefetch_forever())
    event(log, "simulator listening", stage="simulate", port=port, banks=banks, units=units,
          engine=engine, faults=len(plan.faults), t0=plan.t0)
    if ready:
        ready(plan.t0)
    try:
        await (stop.wait() if stop else asyncio.Event().wait())
    finally:
        prefetch.cancel()
        for s in servers:
            if hasattr(s, "shutdown"):
                await s.shutdown()
            else:
                s.close()


class SimulatorProcess:
    """`ess simulate` as a subprocess (for `make run`, tests and benchmarks).

    The process prints `READY <t0>` on stdout once it listens; `t0` is its fault-window origin.
    """

    def __init__(self, port: int, banks: int = 1, *, seed: int = 0, faults: str | None = None,
                 units: bool = False, engine: str = "pymodbus", log_path: str | None = None):
        self.argv = [sys.executable, "-m", "ess_collector.simulator.server", "--port", str(port),
                     "--banks", str(banks), "--seed", str(seed), "--engine", engine]
        if faults:
            self.argv += ["--faults", str(faults)]
        if units:
            self.argv.append("--units")
        self.port, self.banks, self.log_path = port, banks, log_path
        self.proc: subprocess.Popen | None = None
        self.t0 = 0.0

    def start(self, timeout: float = 30.0) -> SimulatorProcess:
        """Start and wait for READY."""
        err = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=err,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith(b"READY"):
                self.t0 = float(line.split()[1])
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"simulator did not start: {line!r}")

    def stop(self) -> None:
        """Terminate the process (kill after 5 s)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m ess_collector.simulator.server`: same options as `ess simulate`."""
    import argparse

    from ess.logs import setup_logging

    p = argparse.ArgumentParser(prog="ess simulate")
    add_arguments(p)
    args = p.parse_args(argv)
    setup_logging("simulator")
    return serve_from_args(args)


def add_arguments(p) -> None:
    """Options of `ess simulate`."""
    p.add_argument("--port", type=int, required=True, help="first port (ports layout) or port")
    p.add_argument("--banks", type=int, default=1)
    p.add_argument("--faults", help="faults file (YAML or JSON)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--units", action="store_true", help="one port, bank k = unit id k")
    p.add_argument("--engine", choices=("pymodbus", "fast"), default="pymodbus")
    p.add_argument("--host", default=LOCALHOST)


def serve_from_args(args) -> int:
    """Run until SIGTERM/SIGINT; print READY <t0> once listening."""
    from .faults import FaultError

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(t0: float) -> None:
            sys.stdout.write(f"READY {t0!r}\n")
            sys.stdout.flush()

        await run_simulator(args.port, args.banks, seed=args.seed, faults_path=args.faults,
                            units=args.units, engine=args.engine, host=args.host, stop=stop,
                            ready=ready)

    try:
        asyncio.run(go())
    except FaultError as exc:
        log.error("%s", exc)
        sys.stderr.write(f"ess simulate: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
