"""Each shipped example map end to end: simulator (pymodbus, real Modbus TCP) -> `ess collect`
-> Pub/Sub emulator -> ingest function -> TimescaleDB -> export function -> CSV in the GCS
emulator. Every stored value and every CSV cell equals the decoder's value for the registers
the simulator served at the frame's poll second (recomputed from the simulator's model).
Every second second a `wild` fault serves random words in every block, so 64-bit integers run
past 2^53, floats take any bit pattern (NaN, inf) and bits any value; the other seconds serve
the model's plausible values.

One run for all maps: a site per example map, each with its own simulator process serving that
map (`--map FILE`), one collector, one database migrated with every example map.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.quote import ident
from ess.db.schema import table_specs
from ess.decode import decoder_for
from ess.regmap import RegisterMap, load_map_file
from ess_collector.simulator.faults import Fault, FaultPlan
from ess_collector.simulator.server import Simulator, SimulatorProcess, free_port_range
from ess_local.functions import FunctionProcess
from ess_local.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "schemas" / "maps" / "examples").glob("*.yaml"))
TICKS = 8
TZ = "Asia/Seoul"
FAULTS = [{"kind": "wild", "every": 2, "count": 64}]
BUCKETS = ("ess-maps-csv", "ess-maps-quarantine")


@dataclass
class Site:
    """One example map's site: its map, simulator and the model of what it served."""

    site_id: str
    path: Path
    map: RegisterMap
    served: Simulator


@dataclass
class Run:
    """The finished run: its sites, the database and the exported CSV files."""

    sites: list[Site]
    dsn: str
    csv: dict[tuple[str, str], list[dict]]      # (site, table) -> rows of every exported day
    parquet: dict[tuple[str, str], list[dict]]  # the same from the Parquet export


def _sites_doc(sites: list[Site], sims: dict[str, SimulatorProcess], topic: str,
               tmp: Path) -> dict:
    return {"sites": [{"site_id": s.site_id, "timezone": TZ, "devices": [
        {"host": "127.0.0.1", "port": sims[s.site_id].port, "bank_id": 1, "map": str(s.path)}]}
        for s in sites],
        "collector": {"topic": topic, "interval": 1.0, "timeout": 0.3,
                      "reconnect": {"initial": 0.2, "max": 2},
                      "publish": {"max_frames": 5, "max_latency": 0.3, "timeout": 3},
                      "spool": {"path": str(tmp / "spool.sqlite")}}}


def _rows(dsn: str, site_id: str, table: str) -> int:
    conn = connect_dsn(dsn)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT count(*) FROM {ident(table)} WHERE site_id = %s", (site_id,))
        return cur.fetchone()[0]
    finally:
        conn.close()


def _wait_rows(dsn: str, sites: list[Site], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        short = [(s.site_id, t) for s in sites for t in s.map.tables()
                 if _rows(dsn, s.site_id, t) < TICKS]
        if not short:
            return
        assert time.monotonic() < deadline, f"rows still missing for {short}"
        time.sleep(0.5)


def _export(url: str, site: Site, dsn: str, fmt: str = "csv") -> None:
    conn = connect_dsn(dsn)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT DISTINCT (ts AT TIME ZONE %s)::date FROM "
                    f"{ident(site.map.tables()[0])} WHERE site_id = %s", (TZ, site.site_id))
        days = [r[0].isoformat() for r in cur.fetchall()]
    finally:
        conn.close()
    for day in days:
        body = {"date": day, "site": site.site_id, "format": fmt}
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 200, resp.read()


def _files(gcs, site: Site, ext: str) -> dict[tuple[str, str], list[dict]]:
    """Rows of the site's exported `.csv` (text cells) or `.parquet` (typed) files per table."""
    import pyarrow.parquet as pq

    client = gcs.client()
    out = {}
    for table in site.map.tables():
        rows: list[dict] = []
        for blob in client.list_blobs(BUCKETS[0], prefix=f"type={table}/"):
            if not blob.name.endswith(f"/site={site.site_id}{ext}"):
                continue
            data = blob.download_as_bytes()
            rows += (csv.DictReader(io.StringIO(data.decode())) if ext == ".csv"
                     else pq.read_table(io.BytesIO(data)).to_pylist())
        out[(site.site_id, table)] = rows
    return out


@pytest.fixture(scope="module")
def run(pg_cluster, pubsub_emulator, gcs_emulator, tmp_path_factory) -> Run:
    tmp = tmp_path_factory.mktemp("maps-e2e")
    sites = []
    for p in EXAMPLES:
        regmap = load_map_file(p)
        sites.append(Site(f"ex-{p.stem}", p, regmap, Simulator(1, 0, None, regmap)))
    dsn = pg_cluster.create_database(f"maps_{uuid.uuid4().hex[:8]}", timescale=True)
    conn = connect_dsn(dsn)
    migrate(conn, [s.map for s in sites])
    conn.close()
    for b in BUCKETS:
        if gcs_emulator.client().lookup_bucket(b) is None:
            gcs_emulator.create_bucket(b)
    name = f"maps-{uuid.uuid4().hex[:8]}"
    topic = pubsub_emulator.admin.create_topic(name)
    faults = tmp / "faults.yaml"
    faults.write_text(yaml.safe_dump({"faults": FAULTS}))
    sims = {s.site_id: SimulatorProcess(free_port_range(1), 1, faults=str(faults),
                                        map_ref=str(s.path),
                                        log_path=str(tmp / f"{s.site_id}.log")).start()
            for s in sites}
    for s in sites:      # the simulator process's fault plan (its t0 came back with READY)
        s.served.faults = FaultPlan([Fault(**f) for f in FAULTS], 0, sims[s.site_id].t0)
    sites_path = tmp / "sites.yaml"
    sites_path.write_text(yaml.safe_dump(_sites_doc(sites, sims, topic, tmp)))
    env = {"ESS_DB_DSN": dsn, "ESS_SITES_CONFIG": str(sites_path), "ESS_SINK": "main",
           "ESS_QUARANTINE_BUCKET": BUCKETS[1], "ESS_EXPORT_BUCKET": BUCKETS[0],
           **gcs_emulator.env()}
    ingest = FunctionProcess("ingest", ROOT / "functions/ingest/main.py", free_port(),
                             signature_type="cloudevent", log_dir=tmp, env=env).start()
    export = FunctionProcess("export", ROOT / "functions/export/main.py", free_port(),
                             signature_type="http", log_dir=tmp, env=env).start()
    try:
        pubsub_emulator.admin.create_push_subscription(
            f"{name}-ingest", name, ingest.url, ack_deadline=10, min_backoff_s=1,
            max_backoff_s=2)
        col_env = {**os.environ, "PUBSUB_EMULATOR_HOST": pubsub_emulator.host}
        col_env.pop("ESS_TOPIC", None)
        with open(tmp / "collector.log", "ab") as log:
            done = subprocess.run([sys.executable, "-m", "ess.cli", "collect", "--config",
                                   str(sites_path), "--ticks", str(TICKS)], env=col_env,
                                  stdout=subprocess.DEVNULL, stderr=log, timeout=TICKS + 40)
        assert done.returncode == 0, (tmp / "collector.log").read_text()[-3000:]
        _wait_rows(dsn, sites, 30)
        found: dict = {}
        parquet: dict = {}
        for s in sites:
            _export(export.url, s, dsn)
            _export(export.url, s, dsn, "parquet")
            found.update(_files(gcs_emulator, s, ".csv"))
            parquet.update(_files(gcs_emulator, s, ".parquet"))
    finally:
        for sim in sims.values():
            sim.stop()
        ingest.stop()
        export.stop()
    return Run(sites, dsn, found, parquet)


def _expected(site: Site, table: str, second: int) -> dict:
    """The decoder's row of `table` for what the simulator served during `second`."""
    served = site.served.registers_at(1, second)
    (row,) = [r for r in decoder_for(site.map).decode(served) if r["table"] == table]
    return row


def _same(got, want, sql_type: str) -> bool:
    """`got` (a database value or CSV text) is exactly the decoder's `want`."""
    if want is None:
        return got is None or got == ""
    if sql_type in ("real", "double precision"):
        a, b = (np.float32(got), np.float32(want)) if sql_type == "real" else (float(got), want)
        return a == b or (np.isnan(a) and np.isnan(b))
    return int(got) == Decimal(want)       # smallint .. bigint and numeric(20), exactly


def _types(run: Run) -> dict[str, dict[str, str]]:
    return {n: dict(s.values) for n, s in table_specs([s.map for s in run.sites]).items()}


@pytest.mark.parametrize("example", [p.stem for p in EXAMPLES])
def test_stored_values_equal_the_decoders_of_what_was_served(run, example):
    site = next(s for s in run.sites if s.path.stem == example)
    types = _types(run)
    wide = {f.column: 0 for f in site.map.fields() if f.type in ("int64", "uint64")}
    conn = connect_dsn(run.dsn)
    try:
        for table in site.map.tables():
            cols = site.map.columns(table)
            cur = conn.cursor()
            cur.execute(f"SELECT (extract(epoch FROM ts) * 1000000)::bigint, "
                        f"{', '.join(ident(c) for c in cols)} FROM {ident(table)} "
                        f"WHERE site_id = %s ORDER BY ts", (site.site_id,))
            rows = cur.fetchall()
            assert len(rows) == TICKS, (table, len(rows))
            for us, *values in rows:
                second = us // 1_000_000
                want = _expected(site, table, second)
                wild = site.served.faults.first("wild", 1, None, second) is not None
                for c, v in zip(cols, values, strict=True):
                    assert v is not None or wild, (table, c, "NULL without a wild fault")
                    assert _same(v, want[c], types[table][c]), (table, c, us, v, want[c])
                    if c in wide and v is not None:
                        wide[c] = max(wide[c], abs(int(v)))
    finally:
        conn.close()
    assert all(v > 2 ** 53 for v in wide.values()), wide    # exact beyond a double's integers


def _assert_export_equals_served(run, example: str, exported: dict, ts_of) -> None:
    """Every exported row of the example's site (TICKS per table) holds, in each column, the
    decoder's value of what was served at its second (`ts_of(row)`: the row's aware time)."""
    site = next(s for s in run.sites if s.path.stem == example)
    types = _types(run)
    for table in site.map.tables():
        rows = exported[(site.site_id, table)]
        assert len(rows) == TICKS, (table, len(rows))
        for row in rows:
            want = _expected(site, table, int(ts_of(row).timestamp()))
            for c in site.map.columns(table):
                assert _same(row[c], want[c], types[table][c]), (table, c, row["ts"], row[c])


def _csv_ts(row: dict) -> datetime:
    """A CSV row's time, which must carry the site's UTC offset."""
    ts = datetime.fromisoformat(row["ts"])
    assert ts.tzinfo is not None and ts.utcoffset() == ts.astimezone(ZoneInfo(TZ)).utcoffset()
    return ts


@pytest.mark.parametrize("example", [p.stem for p in EXAMPLES])
def test_csv_cells_equal_the_decoders_of_what_was_served(run, example):
    _assert_export_equals_served(run, example, run.csv, _csv_ts)


@pytest.mark.parametrize("example", [p.stem for p in EXAMPLES])
def test_parquet_values_equal_the_decoders_of_what_was_served(run, example):
    _assert_export_equals_served(run, example, run.parquet, lambda row: row["ts"])
