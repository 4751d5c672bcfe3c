"""End-to-end poll-to-row latency at many banks: the pipeline vs the original 2021 design.

Ours: `make run`'s pipeline (simulator, collector, Pub/Sub emulator push, ingest functions,
TimescaleDB), latency = PostgreSQL commit timestamp - poll start, over every bank row.
Baseline: the original 2021 design in the same run: a thread per bank that polls with pymodbus'
blocking client, preprocesses register by register and INSERTs + COMMITs row by row into the
same tables (every value column double precision, as it stored them).
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


def _insert_sql(m) -> dict[str, str]:
    """One INSERT per table, every value a parameter, as the original 2021 design wrote rows."""
    from ess.db.quote import ident

    def insert(table: str, keys: tuple[str, ...]) -> str:
        names = keys + m.columns(table)
        return (f"INSERT INTO {ident(table)} ({', '.join(ident(c) for c in names)}) "
                f"VALUES ({', '.join(['%s'] * len(names))})")

    return {"bank": insert("bank", ("ts", "site_id", "bank_id")),
            "rack": insert("rack", ("ts", "site_id", "bank_id", "rack_id")),
            "pcs": insert("pcs", ("ts", "site_id", "bank_id")),
            "etc": insert("etc", ("ts", "site_id", "bank_id"))}


class OriginalDesign:
    """The original 2021 design: a thread per bank that polls with pymodbus' blocking client,
    preprocesses register by register and runs one INSERT and one COMMIT per row."""

    def __init__(self, banks: int, seconds: float, dsn: str, port: int):
        from ess.plan import read_plan
        from ess.regmap import load_map

        from .model import OriginalDecoder

        self.banks, self.seconds, self.dsn, self.port = banks, seconds, dsn, port
        self.m = load_map("default")
        self.plan = read_plan(self.m)
        self.decoder = OriginalDecoder(self.m)
        self.sql = _insert_sql(self.m)
        self.latencies: list[float] = []
        self.missed = 0
        self.lock = threading.Lock()
        self.start = float(int(time.time()) + 2)
        self.end = self.start + WARMUP_S + seconds

    def _read(self, client, k: int) -> dict[str, list[int]]:
        """Every block of bank `k`, read request by request (a failed read leaves zeros)."""
        blocks = {b.name: [0] * b.count for b in self.m.blocks}
        for req in self.plan:
            rr = client.read_input_registers(req.address, count=req.count, device_id=k)
            if not rr.isError():
                off = req.address - self.m.block(req.block).start
                blocks[req.block][off:off + req.count] = rr.registers
        return blocks

    def _store(self, conn, cur, ts, site: str, blocks: dict[str, list[int]]) -> None:
        """Decode one poll and store it row by row, a COMMIT after each INSERT."""
        bank, racks, pcs, etc = self.decoder.decode(blocks)
        rows = [("bank", bank), *(("rack", rack) for rack in racks), ("pcs", pcs), ("etc", etc)]
        for table, row in rows:
            cur.execute(self.sql[table], [ts, site] + row)
            conn.commit()

    def _device(self, k: int) -> None:
        """Poll bank `k` once a second until the end; record latencies and missed ticks."""
        from datetime import UTC, datetime

        from ess.db.connect import connect_dsn
        from pymodbus.client import ModbusTcpClient

        client = ModbusTcpClient(LOCALHOST, port=self.port, timeout=0.8, retries=0)
        client.connect()
        conn = connect_dsn(self.dsn)
        cur = conn.cursor()
        tick = self.start
        while tick < self.end:
            time.sleep(max(0.0, tick - time.time()))
            t0 = time.time()
            self._store(conn, cur, datetime.fromtimestamp(t0, UTC), f"orig-{k}",
                        self._read(client, k))
            done = time.time()
            if t0 >= self.start + WARMUP_S:
                with self.lock:
                    self.latencies.append((done - t0) * 1000)
            tick += 1.0
            if time.time() >= tick:
                skip = int(time.time() - tick) + 1
                tick += skip
                with self.lock:
                    self.missed += skip
        conn.close()
        client.close()

    def run(self) -> dict:
        """Run every bank's thread to the end: latency p50/p99/mean (ms) and missed ticks."""
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        threads = [threading.Thread(target=self._device, args=(k,), daemon=True)
                   for k in range(1, self.banks + 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WARMUP_S + self.seconds + 60)
        lat = self.latencies
        return {"p50": _pct(lat, 0.5), "p99": _pct(lat, 0.99), "missed": self.missed,
                "mean": statistics.fmean(lat) if lat else float("nan")}


def bench_e2e(pg, sites: int = 10, banks_per_site: int = 10, seconds: float = 30.0) -> list[dict]:
    """Both designs at sites x banks banks; the baseline writes into its own database on `pg`."""
    import sys

    from ess.db.connect import connect_dsn
    from ess.db.migrate import migrate
    from ess.regmap import load_map

    from .model import float8_layout

    banks = sites * banks_per_site
    ours_r = ours(sites, banks_per_site, seconds)
    dsn = pg.create_database("bench_e2e_original", timescale=True)
    conn = connect_dsn(dsn)
    migrate(conn, [load_map("default")])
    float8_layout(conn, load_map("default"))
    conn.close()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp, ManagedProcess(
            [sys.executable, "-m", "ess.cli", "simulate", "--port", str(port), "--banks",
             str(banks), "--units"], name="simulator", log_path=Path(tmp) / "sim.log") as sim:
        sim.wait_ready(port=port, timeout=30)
        base = OriginalDesign(banks, seconds, dsn, port).run()
    pg.drop_database("bench_e2e_original")
    note = (f"End-to-end at {banks} banks ({sites} sites x {banks_per_site} banks; the collector "
            "sends one message per site and poll second): baseline is the original 2021 design "
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
