"""End-to-end poll-to-row latency at many simulated banks: the pipeline vs the seed's design.

Ours: `make run`'s pipeline (simulator, collector, Pub/Sub emulator push, ingest functions,
TimescaleDB), latency = PostgreSQL commit timestamp - poll start, over every bank row.
Baseline: the seed's design in the same run: a thread per bank that polls with pymodbus' blocking
client, preprocesses register by register and INSERTs + COMMITs row by row into the same tables.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from ess_local.procs import LOCALHOST, ManagedProcess, free_port

WARMUP_S = 10.0


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def ours(sites: int, banks: int, seconds: float) -> dict:
    """Run the local pipeline with `sites` simulated sites of `banks` banks each."""
    from ess_local.run import Pipeline

    root = Path(tempfile.mkdtemp(prefix="ess-e2e-"))
    root.chmod(0o755)
    p = Pipeline(root, None, sites, banks)
    p.stack.callback(shutil.rmtree, root, ignore_errors=True)   # runs last: after every stop
    with p.stack:
        p.start()
        time.sleep(WARMUP_S)
        from datetime import UTC, datetime

        since = datetime.now(UTC)
        time.sleep(seconds)
        p50, p99 = p.latency_ms(since)
        counts = p.counts()
    return {"p50": p50, "p99": p99, "rows": counts["main"]["bank"]}


def seed_like(banks: int, seconds: float, dsn: str, port: int) -> dict:
    """Thread per bank: blocking reads, seed preprocessing, one INSERT and COMMIT per row."""
    from ess.db.connect import connect_dsn
    from ess.db.quote import ident
    from ess.plan import read_plan
    from ess.regmap import load_map
    from pymodbus.client import ModbusTcpClient

    from .model import SeedDecoder

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    m = load_map("default")
    plan = read_plan(m)
    seed = SeedDecoder(m)
    cols = {t: m.columns(t) for t in m.tables()}

    def insert(table: str, keys: tuple[str, ...], n: int) -> str:
        names = keys + cols[table]
        return (f"INSERT INTO {ident(table)} ({', '.join(ident(c) for c in names)}) "
                f"VALUES ({', '.join(['%s'] * (len(keys) + n))})")

    sql = {"bank": insert("bank", ("ts", "site_id", "bank_id"), len(cols["bank"])),
           "rack": insert("rack", ("ts", "site_id", "bank_id", "rack_id"), len(cols["rack"])),
           "pcs": insert("pcs", ("ts", "site_id", "bank_id"), len(cols["pcs"])),
           "etc": insert("etc", ("ts", "site_id", "bank_id"), len(cols["etc"]))}
    latencies: list[float] = []
    missed = [0]
    lock = threading.Lock()
    start = float(int(time.time()) + 2)
    end = start + WARMUP_S + seconds

    def device(k: int) -> None:
        from datetime import UTC, datetime

        client = ModbusTcpClient(LOCALHOST, port=port, timeout=0.8, retries=0)
        client.connect()
        conn = connect_dsn(dsn)
        cur = conn.cursor()
        site = f"seed-{k}"
        tick = start
        while tick < end:
            time.sleep(max(0.0, tick - time.time()))
            t0 = time.time()
            blocks = {b.name: [0] * b.count for b in m.blocks}
            for req in plan:
                rr = client.read_input_registers(req.address, count=req.count, device_id=k)
                if not rr.isError():
                    off = req.address - m.block(req.block).start
                    blocks[req.block][off:off + req.count] = rr.registers
            bank, racks, pcs, etc = seed.decode(blocks)
            ts = datetime.fromtimestamp(t0, UTC)
            cur.execute(sql["bank"], [ts, site] + bank)
            conn.commit()
            for rack in racks:
                cur.execute(sql["rack"], [ts, site] + rack)
                conn.commit()
            cur.execute(sql["pcs"], [ts, site] + pcs)
            conn.commit()
            cur.execute(sql["etc"], [ts, site] + etc)
            conn.commit()
            done = time.time()
            if t0 >= start + WARMUP_S:
                with lock:
                    latencies.append((done - t0) * 1000)
            tick += 1.0
            if time.time() >= tick:
                skip = int(time.time() - tick) + 1
                tick += skip
                with lock:
                    missed[0] += skip
        conn.close()
        client.close()

    threads = [threading.Thread(target=device, args=(k,), daemon=True)
               for k in range(1, banks + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WARMUP_S + seconds + 60)
    return {"p50": _pct(latencies, 0.5), "p99": _pct(latencies, 0.99), "missed": missed[0],
            "mean": statistics.fmean(latencies) if latencies else float("nan")}


def bench_e2e(pg, sites: int = 10, banks_per_site: int = 10, seconds: float = 30.0) -> list[dict]:
    """Both designs at sites x banks banks; the baseline writes into its own database on `pg`."""
    import sys

    from ess.db.connect import connect_dsn
    from ess.db.migrate import migrate
    from ess.regmap import load_map

    from .model import seed_layout

    banks = sites * banks_per_site
    ours_r = ours(sites, banks_per_site, seconds)
    dsn = pg.create_database("bench_e2e_seed", timescale=True)
    conn = connect_dsn(dsn)
    migrate(conn, [load_map("default")])
    seed_layout(conn, load_map("default"))
    conn.close()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, ManagedProcess(
            [sys.executable, "-m", "ess.cli", "simulate", "--port", str(port), "--banks",
             str(banks), "--units"], name="simulator", log_path=Path(tmp) / "sim.log") as sim:
        sim.wait_ready(port=port, timeout=30)
        base = seed_like(banks, seconds, dsn, port)
    pg.drop_database("bench_e2e_seed")
    note = (f"End-to-end at {banks} banks ({sites} sites x {banks_per_site} banks; the collector "
            "sends one message per site and poll second): baseline is the seed's design "
            "(thread per bank, row-by-row INSERT and COMMIT) in the same run; it missed "
            f"{base['missed']} "
            "poll ticks.")
    return [
        {"figure": f"poll-to-row latency p50 at {banks} banks (ms)", "ours": ours_r["p50"],
         "baseline": base["p50"], "unit": "ms", "target": "", "higher_is_better": False},
        {"figure": f"poll-to-row latency p99 at {banks} banks (ms)", "ours": ours_r["p99"],
         "baseline": base["p99"], "unit": "ms", "target": "<= 2,000 ms",
         "higher_is_better": False, "note": note},
    ]
