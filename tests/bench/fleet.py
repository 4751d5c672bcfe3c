"""Ingest across function processes for `make bench` (docs/scaling.md's measured inputs).

Frames stored per second with 1, 2 and 4 functions-framework processes against one database
(each process 16 threads, fed by 16 concurrent push clients; 10 frames per message: one site of
10 banks and one poll second, as the collector sends them), the 1-process run as the baseline;
and the CPU each side spends (function processes, PostgreSQL), read from /proc for each process
tree, per message and per frame. On this machine everything shares 2 cores, so the curve
flattens where the cores run out; the CPU per frame is what sizes the cloud side.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from .ingest import CLIENTS, INGEST_MAIN, _bench_database, _post_all, _push_bodies
from .quiet import quiet_alarms

PROCESSES = (1, 2, 4)
BANKS = 10                 # banks per site: one message per site and poll second
MESSAGES = 1500            # per configuration
_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of a live process and its live descendants (a function and
    its workers; the postmaster and its backends, which each start a session of their own)."""
    procs: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()       # state ppid pgrp session ...
        procs[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += procs.get(pid, (0, 0))[1]
        todo += children.get(pid, [])
    return total / _TICK


def _frames(regmap, site: str, second: int, t0: int) -> list:
    from ess.codec import BlockData, Frame

    values = quiet_alarms(regmap, {b.name: [(second * 7 + i) % 1000 for i in range(b.count)]
                                   for b in regmap.blocks})     # a healthy bank (quiet.py)
    regs = {name: Frame.registers_to_bytes(v) for name, v in values.items()}
    us = t0 + second * 1_000_000
    return [Frame(site, bank, second, us, us + 40_000, regmap.map_id, regmap.version,
                  {n: BlockData(registers=r) for n, r in regs.items()})
            for bank in range(1, BANKS + 1)]


def _sites_file(work: Path, sites: list[str]) -> Path:
    import yaml

    path = work / "sites.yaml"
    path.write_text(yaml.safe_dump({"sites": [
        {"site_id": s, "devices": [{"host": "127.0.0.1", "port": 20000 + k * BANKS + b,
                                    "bank_id": b} for b in range(1, BANKS + 1)]}
        for k, s in enumerate(sites)]}))
    return path


def _bodies(regmap, tag: str, n: int, t0: int) -> list[dict]:
    """n messages of 10 frames, each of its own site (so no two lock the same rows)."""
    frames = []
    for m in range(n):
        frames += _frames(regmap, f"{tag}-{m % 50}", m // 50, t0)
    return _push_bodies(frames, BANKS)


def _run(regmap, env: dict, work: Path, procs: int, t0: int, pg_root: int) -> dict:
    from ess_local.functions import FunctionProcess
    from ess_local.procs import free_port

    fns = [FunctionProcess("ingest", INGEST_MAIN, free_port(), signature_type="cloudevent",
                           env=env, log_dir=work) for _ in range(procs)]
    try:
        for k, fn in enumerate(fns):
            fn.start()
            _post_all(fn.url, _bodies(regmap, f"warm{procs}x{k}", 50, t0))
        bodies = _bodies(regmap, f"p{procs}", MESSAGES, t0)
        shares = [bodies[k::procs] for k in range(procs)]
        cpu0 = [tree_cpu(fn._proc.proc.pid) for fn in fns], tree_cpu(pg_root)
        errors: list[BaseException] = []

        def post(fn, part) -> None:
            try:
                _post_all(fn.url, part, CLIENTS)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        start = time.perf_counter()
        threads = [threading.Thread(target=post, args=(fn, part))
                   for fn, part in zip(fns, shares, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise errors[0]
        fn_cpu = sum(tree_cpu(fn._proc.proc.pid) for fn in fns) - sum(cpu0[0])
        db_cpu = tree_cpu(pg_root) - cpu0[1]
    finally:
        for fn in fns:
            fn.stop()
    frames = MESSAGES * BANKS
    return {"fps": frames / elapsed, "fn_ms_per_msg": 1000 * fn_cpu / MESSAGES,
            "db_us_per_frame": 1e6 * db_cpu / frames, "cpu_busy": (fn_cpu + db_cpu) / elapsed}


def bench_ingest_processes(cluster) -> list[dict]:
    """Frames/s with 1, 2 and 4 ingest processes on one database; see the module docstring."""
    from ess.regmap import load_map

    regmap = load_map("default")
    name, dsn = _bench_database(cluster, regmap)
    work = Path(tempfile.mkdtemp(prefix="ess-bench-fleet-"))
    t0 = (int(time.time()) - 3 * 86400) * 1_000_000
    sites = [f"{tag}-{k}" for tag in [*(f"warm{p}x{i}" for p in PROCESSES for i in range(p)),
                                      *(f"p{p}" for p in PROCESSES)] for k in range(50)]
    env = {"ESS_DB_DSN": dsn, "ESS_SITES_CONFIG": str(_sites_file(work, sites)),
           "ESS_SINK": "bench", "ESS_QUARANTINE_BUCKET": str(work / "quarantine"),
           "THREADS": str(CLIENTS)}
    try:
        runs = {p: _run(regmap, env, work, p, t0, cluster._proc.proc.pid) for p in PROCESSES}
    finally:
        cluster.drop_database(name)
        shutil.rmtree(work, ignore_errors=True)
    return _figures(runs)


def _figures(runs: dict[int, dict]) -> list[dict]:
    one = runs[1]
    detail = "; ".join(
        f"{p} process{'es' if p > 1 else ''}: {r['fps']:,.0f} frames/s, function "
        f"{r['fn_ms_per_msg']:.2f} ms CPU per message, database {r['db_us_per_frame']:,.0f} "
        f"us CPU per frame, {r['cpu_busy']:.2f} of {os.cpu_count()} cores busy"
        for p, r in runs.items())
    rows = [{"figure": f"ingest: frames stored/s with {p} function processes on one database "
                       "(baseline: 1 process)", "ours": r["fps"], "baseline": one["fps"],
             "unit": "frames/s", "target": "where it saturates", "higher_is_better": True}
            for p, r in runs.items() if p > 1]
    rows[0]["note"] = (f"ingest across processes: {MESSAGES} messages of {BANKS} frames (one "
                       f"site's banks, one poll second) per run, {CLIENTS} push clients and "
                       f"threads per process, TimescaleDB on 127.0.0.1, all on one machine. "
                       f"{detail}. CPU from /proc per process tree")
    rows += [
        {"figure": "ingest: function CPU per 10-frame message (1 process)",
         "ours": one["fn_ms_per_msg"], "baseline": None, "unit": "ms",
         "target": "cost model input"},
        {"figure": "ingest: database CPU per stored frame (1 process)",
         "ours": one["db_us_per_frame"], "baseline": None, "unit": "us",
         "target": "cost model input"},
    ]
    return rows
