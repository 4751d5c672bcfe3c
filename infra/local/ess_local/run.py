"""`make run`: the whole pipeline on this machine, on the local emulators.

Starts PostgreSQL + TimescaleDB (main and replica databases), the Pub/Sub emulator with the same
topic and subscriptions as the Terraform configuration (pushing to the local functions), the GCS
emulator, the ingest functions (main, replica) and the export function under functions-framework,
the ESS simulator (3 sites, 1 bank each, serving MAP: a map id or file, `default` unless set)
unless CONFIG names real devices (each device's `map` is used), and the collector.
Prints a status line every few seconds, triggers the export, rollups and retention like the
scheduler would, and on Ctrl-C or after DURATION seconds drains, stops everything and prints one
`SUMMARY {json}` line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from . import events
from .functions import FunctionProcess
from .gcs import GcsEmulator
from .kept import keep_buckets, keep_database_dir
from .postgres import Cluster
from .procs import LOCALHOST, ManagedProcess, free_port
from .pubsub import Emulator, PubSub
from .status import (
    collector_stats,
    error_lines,
    exit_code,
    run_status,
    spool_depth,
    status_line,
    summary_fields,
)
from .upkeep import ROLLUP_EVERY, describe, run_task

ROOT = Path(__file__).resolve().parents[3]
PROJECT = "ess-local"
PREFIX = "ess"                                   # the Terraform `prefix` default
TOPIC, DEAD_LETTER = f"{PREFIX}-frames", f"{PREFIX}-frames-dead-letter"
BUCKETS = {"csv": f"{PREFIX}-local-csv", "quarantine": f"{PREFIX}-local-quarantine",
           "archive": f"{PREFIX}-local-archive"}
TABLES = ("bank", "rack", "pcs", "etc")
STATUS_EVERY = 5.0
EXPORT_EVERY = 120.0


def say(line: str) -> None:
    print(line, flush=True)


def _site_name(k: int, sites: int) -> str:
    """site-a, site-b, ... for a few sites; site-001, site-002, ... for many."""
    return f"site-{chr(ord('a') + k)}" if sites <= 26 else f"site-{k + 1:03d}"


def simulated_sites(port: int, sites: int, banks: int = 1, map_ref: str = "default") -> dict:
    """sites.yaml for `sites` simulated sites of `banks` banks each, all on one port: the
    simulator's bank (unit id) u = site index * banks + bank; every device reads `map_ref`."""
    return {"sites": [{"site_id": _site_name(k, sites), "timezone": "Asia/Seoul",
                       "devices": [{"host": LOCALHOST, "port": port, "unit_id": k * banks + b,
                                    "bank_id": b, "map": map_ref}
                                   for b in range(1, banks + 1)]} for k in range(sites)]}


class Pipeline:
    """Starts, watches and stops the local pipeline."""

    def __init__(self, run_dir: Path, config: Path | None, sites: int, banks: int = 1,
                 map_ref: str = "default", faults: Path | None = None):
        self.run_dir, self.config, self.n_sites, self.n_banks = run_dir, config, sites, banks
        self.map_ref, self.faults = map_ref, faults
        self.logs = run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.stack = contextlib.ExitStack()
        self.stop = threading.Event()
        self.kept: dict[str, int] = {}     # folder of the run -> files kept there

    # ---- start ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every service, function and process, in dependency order."""
        self._start_databases()
        sites_path = self._write_sites()
        self._migrate()
        self.gcs = self.stack.enter_context(GcsEmulator(free_port(), log_dir=self.logs))
        for bucket in BUCKETS.values():
            self.gcs.create_bucket(bucket, project=PROJECT)
        self.pubsub = self.stack.enter_context(Emulator(free_port(), PROJECT, log_dir=self.logs))
        say(f"run: Pub/Sub emulator ({self.pubsub.kind}) at {self.pubsub.host}, "
            f"GCS emulator at {self.gcs.endpoint}")
        common = {"ESS_SITES_CONFIG": str(sites_path), "GOOGLE_CLOUD_PROJECT": PROJECT,
                  "ESS_QUARANTINE_BUCKET": BUCKETS["quarantine"],
                  "ESS_EXPORT_BUCKET": BUCKETS["csv"], **self.gcs.env(), **self.pubsub.env()}
        self._start_functions(common)
        self._create_subscriptions()
        self._start_archiver(common)
        say("run: functions ingest-main, ingest-replica and export are serving; "
            "push subscriptions created")
        self.collector = ManagedProcess(
            [sys.executable, "-m", "ess.cli", "collect", "--config", str(sites_path)],
            name="collector", log_path=self.logs / "collector.log",
            env={**os.environ, **self.pubsub.env(), "GOOGLE_CLOUD_PROJECT": PROJECT,
                 "ESS_SPOOL_PATH": str(self.run_dir / "spool.sqlite")})
        self.stack.enter_context(self.collector)
        say(f"run: collector polling {len(self.sites.devices())} device(s) every second; "
            f"logs in {self.logs}")

    def _start_databases(self) -> None:
        """The run's cluster, kept after the run in <run>/pg/data (`make run-db` opens it)."""
        pg_dir = keep_database_dir(self.run_dir)
        self.pg = self.stack.enter_context(Cluster(pg_dir / "data", free_port(), settings={
            "track_commit_timestamp": "on"}))
        self.dsn = {"main": self.pg.create_database("ess_main", timescale=True),
                    "replica": self.pg.create_database("ess_replica", timescale=True)}
        say(f"run: {self.pg.describe()}; databases ess_main and ess_replica")

    def _write_sites(self) -> Path:
        """sites.yaml of the run (CONFIG's devices, else a started simulator's); its path."""
        from ess.sites import load_sites

        self.sim = None
        sites_path = self.run_dir / "sites.yaml"
        if self.config:
            doc = yaml.safe_load(self.config.read_text())
        else:
            port = free_port()
            self.sim = self.stack.enter_context(ManagedProcess(
                [sys.executable, "-m", "ess.cli", "simulate", "--port", str(port), "--banks",
                 str(self.n_sites * self.n_banks), "--units", "--map", self.map_ref,
                 *(["--faults", str(self.faults)] if self.faults else [])],
                name="simulator",
                log_path=self.logs / "simulator.log"))
            self.sim.wait_ready(port=port, timeout=30)
            doc = simulated_sites(port, self.n_sites, self.n_banks, self.map_ref)
            say(f"run: simulator serving {self.n_sites} site(s) x {self.n_banks} bank(s) of "
                f"map {self.map_ref} on {LOCALHOST}:{port}")
        doc.setdefault("collector", {})
        doc["collector"].update({"stats_interval": STATUS_EVERY,
                                 "topic": f"projects/{PROJECT}/topics/{TOPIC}"})
        doc["collector"].setdefault("publish", {"max_frames": 10, "max_latency": 0.1})
        sites_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.sites = load_sites(sites_path)
        used = {t for m in self.sites.maps().values() for t in m.tables()}
        self.tables = [t for t in TABLES if t in used]      # the first one counts frames
        return sites_path

    def _migrate(self) -> None:
        from ess.db.connect import connect_dsn
        from ess.db.migrate import migrate

        maps = list(self.sites.maps().values())
        for name, dsn in self.dsn.items():
            conn = connect_dsn(dsn)
            m = migrate(conn, maps)
            conn.close()
            say(f"run: {name} database migrated ({m.mode if m else 'up to date'})")

    def _start_functions(self, common: dict) -> None:
        self.functions = {}
        for sink in ("main", "replica"):
            self.functions[sink] = self.stack.enter_context(FunctionProcess(
                "ingest", ROOT / "functions" / "ingest" / "main.py", free_port(),
                signature_type="cloudevent", log_dir=self.logs,
                env={**common, "ESS_DB_DSN": self.dsn[sink], "ESS_SINK": sink,
                     "THREADS": "16"}))   # as deployed: one thread per concurrent push
        self.functions["export"] = self.stack.enter_context(FunctionProcess(
            "export", ROOT / "functions" / "export" / "main.py", free_port(),
            signature_type="http", log_dir=self.logs,
            env={**common, "ESS_DB_DSN": self.dsn["main"]}))

    def _create_subscriptions(self) -> None:
        self.admin = PubSub(self.pubsub.host, PROJECT)
        self.stack.callback(self.admin.close)
        self.admin.create_topic(TOPIC)
        self.admin.create_topic(DEAD_LETTER)
        for sink in ("main", "replica"):
            self.admin.create_push_subscription(
                f"{PREFIX}-frames-ingest-{sink}", TOPIC, self.functions[sink].url,
                ack_deadline=30, dead_letter_topic=DEAD_LETTER, max_delivery_attempts=100,
                min_backoff_s=1, max_backoff_s=10)
        self.admin.create_pull_subscription(DEAD_LETTER, DEAD_LETTER)

    def _start_archiver(self, env: dict) -> None:
        """The local twin of the Pub/Sub Cloud Storage subscription (raw frame archive)."""
        sub = f"{PREFIX}-frames-raw-archive"
        self.admin.create_pull_subscription(sub, TOPIC, ack_deadline=60)
        self.stack.enter_context(ManagedProcess(
            [sys.executable, "-m", "ess_local.archiver", "--subscription",
             f"projects/{PROJECT}/subscriptions/{sub}", "--dest", f"gs://{BUCKETS['archive']}/frames/"],
            name="archiver", log_path=self.logs / "archiver.log", env={**os.environ, **env}))

    # ---- watch ------------------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        from ess.db.connect import connect_dsn
        from ess.db.quote import ident

        out = {}
        for sink, dsn in self.dsn.items():
            conn = connect_dsn(dsn)
            cur = conn.cursor()
            out[sink] = {}
            for t in self.tables:
                cur.execute(f"SELECT count(*) FROM {ident(t)}")
                out[sink][t] = cur.fetchone()[0]
            conn.close()
        return out

    def latency_ms(self, since: dt.datetime | None = None) -> tuple[float, float]:
        """p50 and p99 of poll start -> row committed, over the first table's rows (bank for the
        default map) in the main database."""
        from ess.db.connect import connect_dsn
        from ess.db.quote import ident

        conn = connect_dsn(self.dsn["main"])
        cur = conn.cursor()
        cur.execute("SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY "
                    "extract(epoch FROM pg_xact_commit_timestamp(xmin) - ts) * 1000) "
                    f"FROM {ident(self.tables[0])} "
                    "WHERE %s::timestamptz IS NULL OR ts >= %s",
                    (since, since))
        row = cur.fetchone()[0]
        conn.close()
        return (round(row[0], 1), round(row[1], 1)) if row and row[0] is not None else (0, 0)

    def export(self) -> int:
        """Trigger the export for today in each site's zone, as the scheduler would."""
        done = 0
        for site in self.sites.sites:
            day = dt.datetime.now(ZoneInfo(site.timezone)).date().isoformat()
            req = urllib.request.Request(
                self.functions["export"].url, data=json.dumps(
                    {"date": day, "site": site.site_id}).encode(),
                headers={"Content-Type": "application/json"}, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    done += resp.status == 200
            except OSError as exc:
                say(f"run: export of {site.site_id} {day} failed: {exc}")
        return done

    def csv_objects(self) -> int:
        return sum(1 for name in self.object_names() if name.endswith((".csv", ".csv.gz")))

    def object_names(self) -> list[str]:
        """Names of the objects in the export bucket, sorted."""
        return sorted(b.name for b in self.gcs.client(PROJECT).list_blobs(BUCKETS["csv"]))

    def watch(self, duration: float | None) -> None:
        t0 = time.monotonic()
        last_status = last_export = last_rollup = t0
        prev_rows, prev_t = 0, t0
        while not self.stop.is_set():
            if duration and time.monotonic() - t0 >= duration:
                break
            self.stop.wait(0.5)
            now = time.monotonic()
            if not self.collector.running:
                say("run: the collector exited; see " + str(self.logs / "collector.log"))
                break
            if now - last_status >= STATUS_EVERY:
                c = self.counts()
                p50, p99 = self.latency_ms()
                fps = (c["main"][self.tables[0]] - prev_rows) / (now - prev_t)
                prev_rows, prev_t, last_status = c["main"][self.tables[0]], now, now
                say(f"status: {now - t0:5.0f}s frames/s {fps:5.1f} | main "
                    + " ".join(f"{t}={c['main'][t]}" for t in self.tables) + " | replica "
                    + " ".join(f"{t}={c['replica'][t]}" for t in self.tables)
                    + f" | lag p50 {p50:.0f} ms p99 {p99:.0f} ms | errors "
                    + f"{error_lines(self.logs)} | spool {spool_depth(self.run_dir)}"
                    + f" | {status_line(run_status(self.dsn['main'], self.sites))}"
                    + f" | {events.status_text(events.episodes(self.dsn['main']))}")
            if now - last_export >= EXPORT_EVERY:
                last_export = now
                say(f"run: export triggered ({self.export()} site(s) written)")
            if now - last_rollup >= ROLLUP_EVERY:
                last_rollup = now
                say(f"run: rollup {describe(run_task(self.functions['export'].url, 'rollup'))}")

    # ---- stop -------------------------------------------------------------------------------
    def drain(self, timeout: float = 45.0) -> dict:
        """Stop polling, let in-flight frames land in both databases, then export."""
        self.collector.stop(grace=20)
        deadline = time.monotonic() + timeout
        settled_at, last = None, None
        while time.monotonic() < deadline:
            c = self.counts()
            if c == last and c["main"] == c["replica"] and spool_depth(self.run_dir) == 0:
                if settled_at and time.monotonic() - settled_at > 3:
                    break
                settled_at = settled_at or time.monotonic()
            else:
                settled_at = None
            last = c
            time.sleep(1)
        say(f"run: export on exit ({self.export()} site(s) written)")
        for task in ("rollup", "retention"):
            say(f"run: {task} {describe(run_task(self.functions['export'].url, task))}")
        self.kept = keep_buckets(self.gcs.client(PROJECT), BUCKETS, self.run_dir)
        say("run: kept in " + ", ".join(f"{d} ({n} files)" for d, n in self.kept.items()))
        return last or self.counts()

    def summary(self, counts: dict) -> dict:
        p50, p99 = self.latency_ms()
        return {"sites": collector_stats(self.logs, self.sites),
                "rows_main": counts["main"], "rows_replica": counts["replica"],
                "csv_objects": self.csv_objects(), "objects": self.object_names(),
                "latency_p50_ms": p50, "latency_p99_ms": p99, "errors": error_lines(self.logs),
                "run_dir": str(self.run_dir), "kept": self.kept,
                **summary_fields(run_status(self.dsn["main"], self.sites)),
                **events.summary_fields(events.episodes(self.dsn["main"]),
                                        events.episodes(self.dsn["replica"]),
                                        events.event_lines(self.logs))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ess-run", description=__doc__)
    p.add_argument("--duration", type=float, default=float(os.environ.get("DURATION") or 0),
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--config", default=os.environ.get("CONFIG") or None,
                   help="sites.yaml with real devices (default: the simulator)")
    p.add_argument("--sites", type=int, default=3, help="simulated sites")
    p.add_argument("--banks", type=int, default=1, help="simulated banks per site")
    p.add_argument("--map", default=os.environ.get("MAP") or "default",
                   help="register map the simulator serves: a map id or a file")
    p.add_argument("--faults", default=os.environ.get("FAULTS") or None,
                   help="the simulator's faults file (e.g. infra/local/faults/rack-fault.yaml)")
    p.add_argument("--run-dir", default=None)
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir or ROOT / ".run" / dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir.chmod(0o755)
    map_ref = str(Path(args.map).resolve()) if Path(args.map).is_file() else args.map
    pipeline = Pipeline(run_dir, Path(args.config).resolve() if args.config else None, args.sites,
                        args.banks, map_ref,
                        Path(args.faults).resolve() if args.faults else None)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: pipeline.stop.set())
    code = 0
    with pipeline.stack:
        try:
            pipeline.start()
            pipeline.watch(args.duration or None)
            say("run: stopping: draining in-flight frames")
            counts = pipeline.drain()
            summary = pipeline.summary(counts)
            code = exit_code(summary)         # databases disagree, or lost_frames > 0
            say("SUMMARY " + json.dumps(summary, sort_keys=True))
        except Exception as exc:
            say(f"run: failed: {exc}")
            code = 1
            raise
        finally:
            say("run: stopping every process")
    return code


if __name__ == "__main__":
    sys.exit(main())
