"""The simulator's Modbus TCP server: one port per bank (default) or one unit id per bank.

Layouts:
  * ports (default): bank k listens on `port + k - 1` and answers unit id 1 (the spec's one server
    per bank).
  * units (gateway mode): every bank on `port`, bank k answers unit id k (a gateway in front of
    the banks; an unknown unit id gets exception 11, gateway target failed to respond).
Framing: `tcp` (MBAP, default) or `rtu` (RTU frames with CRC-16 over TCP, as a serial gateway
passes them through). The servers are pymodbus' asyncio ModbusTcpServer with a SimDevice per
bank. Run it with `python -m ess_collector.simulator` (or `ess simulate`), or `SimulatorProcess`
as a subprocess.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import subprocess
import sys
import time
from collections import OrderedDict

import numpy as np
from ess.logs import event
from ess.regmap import RegisterMap, load_map
from ess.regmap.model import BIT_FUNCTIONS, FUNCTIONS
from ess.wire.bits import pack_words, unpack_words

from .faults import FaultPlan, load_faults
from .generic import MapModel
from .model import BankModel

log = logging.getLogger(__name__)
LOCALHOST = "127.0.0.1"
FRAMERS = {"tcp": lambda t: t.SOCKET, "rtu": lambda t: t.RTU}


class Simulator:
    """Banks 1..n with a fault plan; `registers_at(bank, t)` is what is served during second t.

    The default map's banks are `BankModel`s (its values as ever), any other map's `MapModel`s.
    Each block has its own store (registers, or one 0/1 per coil or discrete input), so the
    functions' address spaces are separate, as on a device.
    """

    def __init__(self, banks: int = 1, seed: int = 0, faults: FaultPlan | None = None,
                 regmap: RegisterMap | None = None):
        self.map = regmap or load_map("default")
        self.seed = seed
        model = BankModel if self.map.map_id == "default" else MapModel
        self.models = {b: model(b, seed, self.map) for b in range(1, banks + 1)}
        self.faults = faults or FaultPlan([], seed, time.time())
        self.faults.check(self.map)     # `set` faults name columns of this map
        self._cache: OrderedDict[tuple[int, int], dict[str, np.ndarray]] = OrderedDict()

    def _blocks(self, bank: int, t: int) -> dict[str, np.ndarray]:
        """The model's stores of every block at `t` (bits unpacked, one per address)."""
        m = self.models[bank]
        if isinstance(m, BankModel):
            raw = m.raw(t)
            return {b.name: raw[b.start:b.end] for b in self.map.blocks}
        out = {}
        for b, words in zip(self.map.blocks, m.registers(t).values()):
            out[b.name] = unpack_words(words, b.count) if b.is_bits else np.array(
                words, dtype=np.uint16)
        return out

    def stores(self, bank: int, t: int) -> dict[str, np.ndarray]:
        """Every block of `bank` during second `t`, faults (wild, frozen) applied."""
        key = (bank, t)
        out = self._cache.get(key)
        if out is None:
            src = self.faults.frozen_at(bank, t)
            out = self.faults.apply_values(bank, t, self._blocks(bank, src), self.map.blocks)
            self._cache[key] = out
            if len(self._cache) > 4 * len(self.models) + 16:
                self._cache.popitem(last=False)
        return out

    def raw(self, bank: int, t: int) -> np.ndarray:
        """Every block's store during second `t`, one array in map order (for comparisons)."""
        return np.concatenate(list(self.stores(bank, t).values()))

    async def prefetch_forever(self, lead: float = 0.4) -> None:
        """Compute every bank's registers for the next second ahead of time (keeps replies fast
        at the top of each second, when every collector polls)."""
        while True:
            now = time.time()
            nxt = int(now) + 1
            await asyncio.sleep(max(0.0, nxt - lead - now))
            for i, bank in enumerate(self.models):
                self.stores(bank, nxt)
                if i % 16 == 15:
                    await asyncio.sleep(0)

    def registers_at(self, bank: int, t: int) -> dict[str, list[int]]:
        """Blocks as a frame carries them during second `t` (bits packed LSB first)."""
        raw = self.stores(bank, int(t))
        return {b.name: pack_words(raw[b.name]) if b.is_bits else raw[b.name].tolist()
                for b in self.map.blocks}

    async def answer(self, bank: int, address: int, count: int,
                     function: str = "input") -> tuple[str, object]:
        """Decide a read's outcome: ("ok", big-endian register bytes, or one 0/1 per bit),
        ("exception", code) or ("drop", None). A bit read is cut at its block's end."""
        t = int(time.time())
        block = self.map.locate(function, address)
        if block is None or bank not in self.models:
            return "exception", 2
        if block.is_bits:
            count = min(count, block.end - address)
        elif address + count > block.end:
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
        values = self.stores(bank, t)[name][address - block.start:address - block.start + count]
        return "ok", values if block.is_bits else values.astype(">u2").tobytes()


# ---- serving ------------------------------------------------------------------------------
async def start_servers(sim: Simulator, port: int, *, units: bool = False,
                        host: str = LOCALHOST, framing: str = "tcp") -> list:
    """Start listening (returns the pymodbus servers; they serve until shut down)."""
    from pymodbus.constants import ExcCodes
    from pymodbus.framer import FramerType
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    servers: list = []

    functions = {code: name for name, code in FUNCTIONS.items()}

    async def action(bank, fc, start_address, address, count, registers, values):
        function = functions[fc]
        bits = function in BIT_FUNCTIONS     # address: a bit; start_address, count: words
        first = address - address % 16 if bits else address
        kind, payload = await sim.answer(bank, address, 16 * count - address % 16 if bits
                                         else count, function)
        if kind == "exception":
            return ExcCodes(payload)
        if kind == "drop":
            server = servers[0] if units else servers[bank - 1]
            for conn in list(server.active_connections.values()):
                conn.close()
            return ExcCodes.DEVICE_BUSY
        if bits:
            span = np.zeros(16 * count, dtype=np.uint16)
            span[address - first:address - first + len(payload)] = payload
            words = pack_words(span)
        else:
            words = np.frombuffer(payload, ">u2").tolist()
        off = first // 16 - start_address if bits else address - start_address
        registers[off:off + count] = words
        return None

    def store(function: str) -> list:
        bits = function in BIT_FUNCTIONS
        kind, zero = (DataType.BITS, False) if bits else (DataType.REGISTERS, 0)
        blocks = [b for b in sim.map.blocks if b.function == function]
        return [SimData(b.start, count=b.count, values=zero, datatype=kind) for b in blocks
                ] or [SimData(0, values=zero, datatype=kind)]    # none: answer() refuses

    stores = tuple(store(f) for f in ("coil", "discrete", "holding", "input"))

    def device(bank: int, unit: int):
        return SimDevice(unit, simdata=tuple(list(s) for s in stores),
                         action=functools.partial(action, bank))

    if units:
        groups = [(port, [device(b, b) for b in sim.models])]
    else:
        groups = [(port + b - 1, device(b, 1)) for b in sim.models]
    for p, ctx in groups:
        server = ModbusTcpServer(ctx, address=(host, p), framer=FRAMERS[framing](FramerType))
        await server.serve_forever(background=True)
        servers.append(server)
    return servers


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
async def run_simulator(port: int, banks: int = 1, *, seed: int = 0, faults_path=None,
                        units: bool = False, host: str = LOCALHOST, map_ref: str = "default",
                        stop: asyncio.Event | None = None, ready=None,
                        framing: str = "tcp") -> None:
    """Serve `map_ref` (a map id or file) until `stop` is set (or forever); `ready(t0)` is
    called once listening."""
    regmap = load_map(map_ref)
    plan = load_faults(faults_path, seed, time.time())
    sim = Simulator(banks, seed, plan, regmap)
    servers = await start_servers(sim, port, units=units, host=host, framing=framing)
    prefetch = asyncio.create_task(sim.prefetch_forever())
    event(log, "simulator listening", stage="simulate", port=port, banks=banks, units=units,
          faults=len(plan.faults), t0=plan.t0, map=regmap.map_id, framing=framing)
    if ready:
        ready(plan.t0)
    try:
        await (stop.wait() if stop else asyncio.Event().wait())
    finally:
        prefetch.cancel()
        for s in servers:
            await s.shutdown()


COMMAND = (sys.executable, "-m", "ess_collector.simulator")


class SimulatorProcess:
    """`python -m ess_collector.simulator` as a subprocess (for `make run`, tests, benchmarks).

    The process prints `READY <t0>` on stdout once it listens; `t0` is its fault-window origin.
    `command` replaces the program (it gets the same options and must print READY the same way).
    """

    def __init__(self, port: int, banks: int = 1, *, seed: int = 0, faults: str | None = None,
                 units: bool = False, log_path: str | None = None,
                 command: tuple[str, ...] | list[str] = COMMAND, map_ref: str | None = None,
                 framing: str = "tcp"):
        self.argv = [*command, "--port", str(port), "--banks", str(banks), "--seed", str(seed)]
        if framing != "tcp":
            self.argv += ["--framing", framing]
        if faults:
            self.argv += ["--faults", str(faults)]
        if map_ref:
            self.argv += ["--map", str(map_ref)]
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
    """`python -m ess_collector.simulator`: same options as `ess simulate`."""
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
    p.add_argument("--units", "--gateway", action="store_true",
                   help="gateway mode: one port, bank k = unit id k")
    p.add_argument("--framing", choices=sorted(FRAMERS), default="tcp",
                   help="tcp (MBAP) or rtu (RTU frames with CRC over TCP)")
    p.add_argument("--host", default=LOCALHOST)
    p.add_argument("--map", default="default",
                   help="register map to serve: a map id (default, examples/pcs-meter) or a file")


def serve_from_args(args) -> int:
    """Run until SIGTERM/SIGINT; print READY <t0> once listening."""
    from ess.command import MISTAKE, one_line
    from ess.regmap import MapError

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
                            units=args.units, host=args.host, map_ref=args.map, stop=stop,
                            ready=ready, framing=args.framing)

    try:
        asyncio.run(go())
    except (FaultError, MapError) as exc:        # one line, as every `ess` mistake
        sys.stderr.write(f"ess simulate: {one_line(exc)}\n")
        return MISTAKE
    return 0


if __name__ == "__main__":
    sys.exit(main())
