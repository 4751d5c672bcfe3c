"""Benchmarks of the frame ledger (issue 14): its ingest cost, bytes per stored frame, and
`ess status` time.

- Ledger overhead: the real writer (`ess.db.writer.write_frames`, what ingest's group commit
  calls) stores the same frames with and without the ledger in one database, a statement of
  each side in turn (which side goes first alternates), so a change of load from other work
  weighs on both sides alike. "Without" replaces, in this process only, the writer's
  `ledger_lines` with a function returning no lines: the statement then has no ledger CTE, and
  everything else (decode, row text, the data tables' CTEs, the round trip and commit) is the
  product's code.
  Ingest's HTTP and Pub/Sub work is the same either way, so the writer's ratio is an upper
  bound of the ledger's share of ingest throughput.
- Bytes per stored frame: every hypertable (bank, rack, pcs, etc and the frames ledger) with
  its chunks and indexes, after VACUUM ANALYZE, divided by the frames stored; measured like
  tests/bench/model.py's bench_storage, beside the figure recorded before the ledger.
- `ess status`: the command (a subprocess, as cron or a probe runs it) on ledger rows loaded
  with generate_series; for 30 days x 100 banks, 29 days come from `data_status` (what the
  daily export wrote) and the last day from a full day of the ledger (8.64 M rows).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml
from ess.regmap import load_map

from .model import _frames

BYTES_BEFORE_LEDGER = 3064     # docs/benchmarks.md, 2026-11-26: 11 rows with indexes
HYPERTABLES = ("bank", "rack", "pcs", "etc", "frames")


@contextlib.contextmanager
def _no_ledger():
    """The writer without its ledger part (this process only; see the module docstring)."""
    import ess.db.writer as writer

    real = writer.ledger_lines
    writer.ledger_lines = lambda group, oor, published, heads=None: []
    try:
        yield
    finally:
        writer.ledger_lines = real


def _database(cluster, name: str):
    from ess.db.connect import connect_dsn
    from ess.db.migrate import migrate

    dsn = cluster.create_database(name, timescale=True)
    conn = connect_dsn(dsn, timeout=600)     # loading millions of ledger rows takes a while
    migrate(conn, [load_map("default")])
    return dsn, conn


def side_by_side(conn, frames: dict[str, list], maps, per_statement: int,
                 without=_no_ledger) -> dict[str, float]:
    """Frames/s of each side ("with", and "without" inside the `without` context), its
    statements interleaved with the other side's (the first side alternating), so a change of
    machine load weighs on both alike."""
    from ess.db.writer import write_frames

    took = {side: 0.0 for side in frames}
    n = len(frames["with"])
    for k in range(0, n, per_statement):
        order = ("with", "without") if k // per_statement % 2 == 0 else ("without", "with")
        for side in order:
            with without() if side == "without" else contextlib.nullcontext():
                t0 = time.perf_counter()
                write_frames(conn, frames[side][k:k + per_statement], maps)
                took[side] += time.perf_counter() - t0
    return {side: n / t for side, t in took.items()}


def side_by_side_rounds(conn, base: list, maps, per: int, rounds: int, bank: int,
                        without=_no_ledger) -> tuple[dict[str, list[float]], int]:
    """Frames/s of each side in `rounds` rounds of `base`'s frames (after one warm-up round),
    each round and side on a bank of its own from `bank` on; also the next free bank."""
    rates: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(rounds + 1):             # the first round warms up, not counted
        bank += 2
        frames = {side: [dataclasses.replace(f, bank_id=bank - i) for f in base]
                  for i, side in enumerate(("with", "without"))}
        for side, rate in side_by_side(conn, frames, maps, per, without).items():
            rates[side].append(rate)
    return {side: r[1:] for side, r in rates.items()}, bank


def bench_ledger_overhead(cluster, rounds: int = 5) -> list[dict]:
    """Frames stored/s by the writer with the ledger vs without, 1 and 10 frames a statement."""
    m = load_map("default")
    maps = {m.key: m}
    name = f"bench_ledger_{os.getpid()}"
    _, conn = _database(cluster, name)
    out = []
    try:
        bank = 0
        for per, n in ((1, 600), (10, 3000)):
            rates, bank = side_by_side_rounds(conn, _frames(m, n), maps, per, rounds, bank)
            ours, without = (statistics.median(rates[s]) for s in ("with", "without"))
            out.append({"figure": f"ledger overhead: writer frames/s with the ledger vs without "
                        f"({per} frame{'s' if per > 1 else ''} per statement)",
                        "ours": ours, "baseline": without, "unit": "frames/s",
                        "target": ">= 90% of without", "higher_is_better": True,
                        "note": f"ledger overhead, {per} per statement: median of {rounds} "
                                f"rounds of {n} frames a side, each statement with the ledger "
                                f"next to one without (alternating which runs first); with "
                                f"{[round(r) for r in rates['with']]}, without "
                                f"{[round(r) for r in rates['without']]} frames/s "
                                f"(ours/without = {ours / without:.1%})"})
    finally:
        conn.close()
        cluster.drop_database(name)
    return out


def bench_ledger_bytes(cluster, n: int = 3000) -> list[dict]:
    """Bytes on disk per stored frame: data tables and ledger with all indexes."""
    from ess.db.writer import write_frames

    m = load_map("default")
    name = f"bench_ledger_bytes_{os.getpid()}"
    _, conn = _database(cluster, name)
    try:
        frames = _frames(m, n)
        for k in range(0, n, 100):
            write_frames(conn, frames[k:k + 100], {m.key: m})
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("VACUUM ANALYZE")
        cur.execute("SELECT t, hypertable_size(format('%I', t)::regclass) "
                    "FROM unnest(CAST(%s AS text[])) AS t", (list(HYPERTABLES),))
        sizes = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM frames")
        assert cur.fetchone()[0] == n
    finally:
        conn.close()
        cluster.drop_database(name)
    total = sum(sizes.values()) / n
    return [{"figure": "bytes on disk per stored frame (11 rows + ledger row, all indexes; "
             "baseline: the figure before the ledger)", "ours": total,
             "baseline": BYTES_BEFORE_LEDGER, "unit": "bytes", "target": "<= 3,064 B",
             "higher_is_better": False,
             "note": f"bytes per frame by hypertable ({n} frames, 1 bank, 1 Hz, one chunk): "
                     + ", ".join(f"{t} {sizes[t] / n:,.0f}" for t in HYPERTABLES)}]


def _load_ledger(conn, site: str, banks: int, day: date) -> None:
    """A full UTC day at 1 Hz for banks 1..banks, seq contiguous, registers changing."""
    start = datetime.combine(day, datetime.min.time(), UTC)
    cur = conn.cursor()
    for bank in range(1, banks + 1):          # one bank a statement: short transactions
        cur.execute("INSERT INTO frames (ts, site_id, bank_id, seq, map_id, map_version, "
                    "poll_us, published, committed, crc) SELECT %s::timestamptz + s * "
                    "interval '1 second', %s, CAST(%s AS smallint), s, 'default', 1, 30000, "
                    "%s::timestamptz + (s + 0.2) * interval '1 second', %s::timestamptz + "
                    "(s + 0.4) * interval '1 second', s FROM generate_series(0, 86399) s",
                    (start, site, bank, start, start))
        conn.commit()


def _load_status(conn, site: str, banks: int, d0: date, days: int) -> None:
    """`data_status` rows as the daily export writes them, complete days."""
    cur = conn.cursor()
    cur.execute("INSERT INTO data_status (day, site_id, bank_id, timezone, expected, stored, "
                "completeness, lost, resets, missed, failed_polls, failed, out_of_range, "
                "first_poll, last_poll, max_lag_s, frozen_s, computed) "
                "SELECT d, %s, b, 'UTC', 86400, 86400, 1.0, 0, 0, 0, 0, '{}'::jsonb, 0, "
                "d::timestamptz, d::timestamptz + interval '86399 s', 0.4, 0, now() "
                "FROM generate_series(1, CAST(%s AS integer)) b, "
                "generate_series(CAST(%s AS date), CAST(%s AS date) + CAST(%s AS integer) - 1, "
                "interval '1 day') d", (site, banks, d0, d0, days))
    conn.commit()


def _status_cmd(dsn: str, sites: Path, day_rows: int, *args: str) -> float:
    """Seconds `ess status --json` took; its document must have `day_rows` days, every one
    complete (exit 1 also means a crash, so the output is what tells)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ess.cli", "status", "--dsn", dsn, "--sites",
                           str(sites), "--json", *args], capture_output=True, text=True,
                          timeout=600)
    took = time.perf_counter() - t0
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        doc = {}
    days = doc.get("days", [])
    if (proc.returncode not in (0, 1) or len(days) != day_rows   # 1: silent banks (the past)
            or any(d["stored"] != 86400 for d in days)):
        raise RuntimeError(f"ess status failed (exit {proc.returncode}, {len(days)} of "
                           f"{day_rows} days): {proc.stderr[-500:]}")
    return took


def bench_status_query(cluster, banks: int = 100, days: int = 30) -> list[dict]:
    """`ess status` wall time: one site-day of one bank, and `days` days of `banks` banks."""
    last = datetime.now(UTC).date() - timedelta(days=2)
    first = last - timedelta(days=days - 1)
    name = f"bench_status_{os.getpid()}"
    dsn, conn = _database(cluster, name)
    tmp = Path(tempfile.mkdtemp(prefix="bench-status-"))
    try:
        def device(b: int, port: int) -> dict:
            return {"host": "127.0.0.1", "port": port, "bank_id": b}

        sites = tmp / "sites.yaml"
        sites.write_text(yaml.safe_dump({"sites": [
            {"site_id": "one", "timezone": "UTC", "devices": [device(1, 1502)]},
            {"site_id": "big", "timezone": "UTC",
             "devices": [device(b, 2000 + b) for b in range(1, banks + 1)]}]}))
        _load_ledger(conn, "one", 1, last)
        t0 = time.perf_counter()
        _load_ledger(conn, "big", banks, last)
        _load_status(conn, "big", banks, first, days - 1)
        load_s = time.perf_counter() - t0
        conn.autocommit = True
        conn.cursor().execute("VACUUM ANALYZE")
        one = min(_status_cmd(dsn, sites, 1, "--site", "one", "--date", last.isoformat())
                  for _ in range(3))
        big = _status_cmd(dsn, sites, banks * days, "--site", "big", "--from", first.isoformat(),
                          "--to", last.isoformat())
    finally:
        conn.close()
        cluster.drop_database(name)
    note = (f"ess status: the command as a subprocess (interpreter start included), best of 3 "
            f"for one site-day (86,400 ledger rows), one run for {days} days x {banks} banks "
            f"({days - 1} days from data_status, the last from {banks * 86400:,} ledger rows "
            f"loaded in {load_s:.0f} s)")
    return [{"figure": "ess status: one site-day (1 bank)", "ours": one, "baseline": None,
             "unit": "s", "target": "< 1 s", "higher_is_better": False, "note": note},
            {"figure": f"ess status: {days} days x {banks} banks", "ours": big,
             "baseline": None, "unit": "s", "target": "< 30 s", "higher_is_better": False}]
