"""`make bench` (`python -m tests.bench`): every speed figure beside its baseline, in one run.

Writes docs/benchmarks.md. Services (PostgreSQL + TimescaleDB, emulators) are started here on
free ports and stopped at the end. A figure whose code fails is reported as failed, not hidden.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ess_local.procs import free_port


class Services:
    """Lazily started local services shared by the benchmarks."""

    def __init__(self, root: Path):
        self.root = root
        self._stack = contextlib.ExitStack()
        self._pg = self._pubsub = self._gcs = None

    @property
    def pg(self):
        if self._pg is None:
            from ess_local.postgres import Cluster

            d = Path(tempfile.mkdtemp(prefix="pg-", dir=self.root))
            d.chmod(0o755)
            self._pg = self._stack.enter_context(Cluster(d / "data", free_port()))
        return self._pg

    @property
    def pubsub(self):
        if self._pubsub is None:
            from ess_local.pubsub import Emulator

            self._pubsub = self._stack.enter_context(
                Emulator(free_port(), "ess-bench", log_dir=self.root))
        return self._pubsub

    @property
    def gcs(self):
        if self._gcs is None:
            from ess_local.gcs import GcsEmulator

            self._gcs = self._stack.enter_context(GcsEmulator(free_port(), log_dir=self.root))
        return self._gcs

    def close(self) -> None:
        self._stack.close()


# (module, function): each returns a list of figure dicts
# {figure, ours, baseline, unit, target, higher_is_better}.
BENCHMARKS = [
    ("tests.bench.model", "bench_decode", ()),
    ("tests.bench.model", "bench_storage", ("pg",)),
    ("tests.bench.collector", "cpu_per_poll", ()),
    ("tests.bench.collector", "banks_sustained", ()),
    ("tests.bench.collector_gateway", "units_per_gateway", ()),
    ("tests.bench.ingest", "bench_ingest", ("pg",)),
    ("tests.bench.export", "bench_export", ("pg", "gcs")),
    ("tests.bench.e2e", "bench_e2e", ("pg",)),
    ("tests.bench.status", "bench_ledger_overhead", ("pg",)),
    ("tests.bench.status", "bench_ledger_bytes", ("pg",)),
    ("tests.bench.status", "bench_status_query", ("pg",)),
    ("tests.bench.events", "bench_events_overhead", ("pg",)),
    ("tests.bench.events_ingest", "bench_events_ingest", ("pg",)),
    # fleet scale (issue 23): processes, rollups, bytes on the wire
    ("tests.bench.wire", "bench_wire_bytes", ()),
    ("tests.bench.fleet", "bench_ingest_processes", ("pg",)),
    ("tests.bench.rollup", "bench_rollup_cost", ("pg",)),
    ("tests.bench.rollup", "bench_rollup_query", ("pg",)),
]


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.2f}"


def _ratio(r: dict) -> str:
    ours, base = r.get("ours"), r.get("baseline")
    numbers = isinstance(ours, int | float) and isinstance(base, int | float)
    if not numbers or not ours or not base:
        return "—"
    ratio = ours / base if r.get("higher_is_better", True) else base / ours
    return f"{ratio:,.1f}x"


def render(rows: list[dict], machine: str, date: str) -> str:
    out = ["# Benchmarks", "",
           "Written by `make bench`; every figure is measured side by side with its baseline in "
           "the same run, on the same machine. Ratio > 1 means ours is better.", "",
           "| figure | ours | baseline | ratio | target | machine | date |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        unit = f" {r['unit']}" if r.get("unit") and isinstance(r.get("ours"), int | float) else ""
        out.append(f"| {r['figure']} | {_fmt(r.get('ours'))}{unit} | {_fmt(r.get('baseline'))}"
                   f"{unit if isinstance(r.get('baseline'), int | float) else ''} | {_ratio(r)} | "
                   f"{r.get('target', '')} | {machine} | {date} |")
    notes = [r["note"] for r in rows if r.get("note")]
    if notes:
        out += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ess-bench", description=__doc__)
    p.add_argument("--out", default="docs/benchmarks.md")
    p.add_argument("--only", help="run only benchmark functions whose name contains this")
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="ess-bench-"))
    root.chmod(0o755)
    services = Services(root)
    rows: list[dict] = []
    failed = 0
    try:
        for module, func, needs in BENCHMARKS:
            if args.only and args.only not in func:
                continue
            t0 = time.monotonic()
            print(f"bench: {func} ...", file=sys.stderr, flush=True)
            try:
                fn = getattr(importlib.import_module(module), func)
                result = fn(*(getattr(services, n) for n in needs))
                result = [result] if isinstance(result, dict) else result
            except Exception as exc:  # a broken benchmark is reported, and fails the run
                traceback.print_exc()
                failed += 1
                result = [{"figure": f"{func} (failed)", "ours": f"error: {exc}"[:120],
                           "baseline": None, "target": ""}]
            for r in result:
                print(f"bench:   {r['figure']}: ours {_fmt(r.get('ours'))} baseline "
                      f"{_fmt(r.get('baseline'))} ({_ratio(r)})", file=sys.stderr, flush=True)
            print(f"bench: {func} took {time.monotonic() - t0:.0f} s", file=sys.stderr)
            rows += result
    finally:
        services.close()
        shutil.rmtree(root, ignore_errors=True)
    Path(args.out).write_text(render(rows, _machine(), dt.date.today().isoformat()))
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
