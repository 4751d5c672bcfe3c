"""What a `make run` keeps in its folder, and opening its databases again.

    .run/<start>/export/       the export bucket as the export function wrote it to the GCS
                               emulator: type=T/date=D/site=S.csv, _manifests/date=D/manifest.json
    .run/<start>/archive/      the raw archive: `ess redecode --source .run/<start>/archive/frames`
    .run/<start>/quarantine/   messages ingest refused, if any
    .run/<start>/pg/data       the PostgreSQL cluster (ess_main, ess_replica); `pg` links to a
                               temporary directory when the postgres user cannot reach the clone
                               (e.g. under /root, run as root)
    .run/<start>/sites.yaml, logs/, spool.sqlite

`python -m ess_local.kept [RUN_DIR]` (`make run-db [RUN=.run/<start>]`; default: the latest run)
starts the kept cluster on a free port, prints its DSNs and a few commands, and stops it on
Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .postgres import Cluster, unsearchable_parent
from .procs import free_port

ROOT = Path(__file__).resolve().parents[3]
# the run's bucket kinds (ess_local.run.BUCKETS) -> the folder of the run that keeps them
FOLDERS = {"csv": "export", "archive": "archive", "quarantine": "quarantine"}


def keep_buckets(client, buckets: dict[str, str], run_dir: Path) -> dict[str, int]:
    """Copy every object of the run's buckets into its folder (same names); files per folder."""
    kept = {}
    for kind, bucket in buckets.items():
        folder = run_dir / FOLDERS[kind]
        kept[f"{FOLDERS[kind]}/"] = 0
        for blob in client.list_blobs(bucket):
            path = folder / blob.name
            path.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(path))
            kept[f"{FOLDERS[kind]}/"] += 1
    return kept


def keep_database_dir(run_dir: Path) -> Path:
    """Where the run's cluster lives: <run>/pg, or a temporary directory <run>/pg links to when
    the postgres OS user cannot pass through a parent of the run's folder."""
    pg_dir = run_dir / "pg"
    pg_dir.mkdir(exist_ok=True)
    pg_dir.chmod(0o755)
    if unsearchable_parent(pg_dir / "data"):
        outside = Path(tempfile.mkdtemp(prefix="ess-run-pg-"))
        outside.chmod(0o755)
        pg_dir.rmdir()
        pg_dir.symlink_to(outside, target_is_directory=True)
        return outside
    return pg_dir


def latest_run(runs: Path) -> Path | None:
    """The newest run folder under `runs` that kept a cluster."""
    found = sorted(p.parent.parent.parent for p in runs.glob("*/pg/data/PG_VERSION"))
    return found[-1] if found else None


def describe(run_dir: Path, cluster: Cluster) -> list[str]:
    """What `make run-db` prints: the DSNs, and commands that read the run's data."""
    main, replica = cluster.dsn("ess_main"), cluster.dsn("ess_replica")
    return [f"run-db: {run_dir}: {cluster.describe()}",
            f"  main:    {main}", f"  replica: {replica}",
            f"  ess status --dsn {main} --config {run_dir / 'sites.yaml'}",
            f"  psql {main}",
            f"  exported files: {run_dir / 'export'}",
            "Ctrl-C stops the databases."]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make run-db", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", nargs="?", help="a run's folder (default: the latest .run/*)")
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir) if args.run_dir else latest_run(ROOT / ".run")
    datadir = (run_dir / "pg" / "data").resolve() if run_dir else None
    if datadir is None or not (datadir / "PG_VERSION").exists():
        print(f"make run-db: no kept database in {run_dir or ROOT / '.run'}: run `make run` "
              "first", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Cluster(datadir, free_port()) as cluster:
        print("\n".join(describe(run_dir, cluster)), flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
