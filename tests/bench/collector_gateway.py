"""Gateway benchmark for `make bench`: units one shared gateway connection serves at 1 Hz with no
missed tick and no failed block, for a given request latency and pacing.

The gateway is the fast simulator (`collector_sim`) in units layout with `--latency L`: each
connection answers one request at a time, L seconds each, like a gateway in front of a serial
line. Ours: the collector (one shared connection, `pause_between_requests` P, real spool,
NullPublisher). Baseline, in the same run: the client this collector used before, pymodbus'
AsyncModbusTcpClient, one connection shared by the units under an asyncio.Lock with the same
pacing and schedule. Target: what the sizing rule allows,
floor((interval - 0.01) / (requests per unit x (L + P))) (collector/README.md, "Gateways").

    from tests.bench.collector_gateway import units_per_gateway
    units_per_gateway()   # {"figure": ..., "ours": units, "baseline": units, ...}
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from .collector import WARMUP_TICKS, NullPublisher, _pin, _sustains, run_pinned

LATENCY, PAUSE, TICKS = 0.020, 0.005, 3


def _sites(n: int, port: int, tmp: str, pause: float):
    from ess.sites import parse_sites
    from ess_collector.config import collector_settings

    doc = {"sites": [{"site_id": "gw", "devices": [
        {"host": "127.0.0.1", "port": port, "unit_id": k, "bank_id": k}
        for k in range(1, n + 1)]}],
        "collector": {"topic": "projects/bench/topics/null", "interval": 1.0, "timeout": 0.5,
                      "spool": {"path": str(Path(tmp) / "spool.sqlite")},
                      "stats_interval": 3600, "gateways": [
                          {"host": "127.0.0.1", "port": port, "shared_connection": True,
                           "pause_between_requests": pause}]}}
    sites = parse_sites(doc)
    return sites, collector_settings(sites, env={})


def _ours(n: int, port: int, pause: float) -> dict:
    from ess_collector.service import Collector

    with tempfile.TemporaryDirectory() as tmp:
        col = Collector(*_sites(n, port, tmp, pause), publisher=NullPublisher())

        async def go():
            first = math.ceil(time.time() + 0.5)
            task = asyncio.create_task(col.run(max_ticks=WARMUP_TICKS + TICKS, start_at=first))
            # the warm-up ticks' polls end 10 ms before the next tick (the deadline margin)
            await asyncio.sleep(first + WARMUP_TICKS - 0.005 - time.time())
            col.summary.missed_ticks = col.summary.failed_blocks = col.summary.polls = 0
            return await task

        s = asyncio.run(go())
    return {"polls": s.polls, "missed": s.missed_ticks, "failed_blocks": s.failed_blocks}


def _baseline(n: int, port: int, pause: float) -> dict:
    """pymodbus' async client, one connection, a lock per poll, the same pacing."""
    import logging

    from ess.plan import read_plan
    from ess.regmap import load_map
    from pymodbus.client import AsyncModbusTcpClient

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    plan = read_plan(load_map("default"))
    totals = {"polls": 0, "missed": 0, "failed_blocks": 0}

    async def unit(k, client, lock, start):
        tick = start
        for done in range(WARMUP_TICKS + TICKS):
            await asyncio.sleep(max(0.0, tick - time.time()))
            failed = 0
            async with lock:
                for req in plan:
                    try:
                        async with asyncio.timeout(max(0.001, tick + 0.99 - time.time())):
                            rr = await client.read_input_registers(req.address, count=req.count,
                                                                   device_id=k)
                        failed += rr.isError()
                    except Exception:  # noqa: BLE001 - counted as a failed block
                        failed += 1
                    await asyncio.sleep(pause)
            missed = max(0, math.ceil(time.time() - tick - 1.0))
            if done >= WARMUP_TICKS:
                totals["polls"] += 1
                totals["missed"] += missed
                totals["failed_blocks"] += failed
            tick += 1.0 + missed

    async def go():
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
        await client.connect()
        lock, start = asyncio.Lock(), float(int(time.time()) + 1)
        await asyncio.gather(*(unit(k, client, lock, start) for k in range(1, n + 1)))
        client.close()

    asyncio.run(go())
    return totals


def _step(kind: str, n: int, latency: float, pause: float) -> dict:
    """One run in fresh processes: gateway on the last core, client on core 0."""
    from ess_collector.simulator.server import SimulatorProcess, free_port_range

    from .collector_sim import COMMAND

    port = free_port_range(1)
    sim = SimulatorProcess(port, n, units=True, command=(*COMMAND, "--latency", str(latency)))
    return run_pinned(sim, ["tests.bench.collector_gateway", kind, str(n), str(port), str(pause)],
                      60)


def units_per_gateway(latency: float = LATENCY, pause: float = PAUSE) -> dict:
    """Largest unit count one shared connection polls at 1 Hz, no missed tick, no failed
    block: ours vs the pymodbus baseline, searched downwards from the sizing rule's + 1."""
    from ess.plan import read_plan
    from ess.regmap import load_map

    requests = len(read_plan(load_map("default")))
    rule = math.floor((1.0 - 0.01) / (requests * (latency + pause)))
    best, detail = {}, {}
    for kind in ("ours", "baseline"):
        best[kind] = 0
        for n in range(rule + 1, 0, -1):
            r = _step(kind, n, latency, pause)
            detail[f"{kind}:{n}"] = r
            if _sustains(r):
                best[kind] = n
                break
    return {"figure": f"units per shared gateway connection at 1 Hz, no missed tick (request "
                      f"latency {latency * 1000:g} ms, pause {pause * 1000:g} ms, {requests} "
                      "requests per unit)",
            "ours": best["ours"], "baseline": best["baseline"], "unit": "units",
            "target": f"{rule} (sizing rule)", "steps": detail,
            "note": "gateway: the bench simulator answering one request at a time per "
                    "connection with a fixed latency (a serial gateway); baseline: pymodbus' "
                    "AsyncModbusTcpClient (the collector's client before issue 19) sharing one "
                    "connection under a lock with the same pacing; target: floor((interval - "
                    "0.01 s) / (requests x (latency + pause)))"}


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("ours", "baseline"):
        _pin(0)
        n, port, pause = int(argv[1]), int(argv[2]), float(argv[3])
        print(json.dumps((_ours if argv[0] == "ours" else _baseline)(n, port, pause)))
        return 0
    print(json.dumps(units_per_gateway()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
