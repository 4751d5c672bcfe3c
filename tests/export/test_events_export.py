"""The daily export's `events` type (docs/events.md): the alarm episodes that overlap each
site-local day, in every format, read by DuckDB as BigQuery's external table would (the schema
of schemas/bigquery/events.json, hive partitioning on date); an episode across midnight is in
both days' files."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import duckdb
import pyarrow.parquet as pq
from ess import paths
from ess.codec import BlockData, Frame
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.writer import write_frames
from ess.sites import load_sites
from ess_functions.export import export_jobs, plan_jobs
from ess_functions.objstore import DirStore
from export_helpers import SITES_YAML, export_day, local, parse_csv

INVERTED = (221, 222, 223, 224, 225, 226, 227, 228, 229, 233)   # device polarity: OK = 1
_DUCK = {"TIMESTAMP": "TIMESTAMPTZ", "INT64": "BIGINT", "FLOAT64": "DOUBLE", "STRING": "VARCHAR"}


def _frames(regmap, day) -> list[Frame]:
    """site-a bank 1, one poll a second from 23:59:50 to 00:00:10 (Seoul): the bank's rack
    over-temperature fault on from 23:59:58 to 00:00:01."""
    start = local(day, 23, 59, 50)
    out = []
    for k in range(21):
        regs = {b.name: [0] * b.count for b in regmap.blocks}
        for a in INVERTED:
            regs["BMS2"][a - 200] = 1
        regs["BMS2"][210 - 200] = int(8 <= k <= 11)
        us = int((start + timedelta(seconds=k)).timestamp() * 1_000_000)
        out.append(Frame("site-a", 1, k, us, us + 20_000, regmap.map_id, regmap.version,
                         {n: BlockData(registers=Frame.registers_to_bytes(r))
                          for n, r in regs.items()}))
    return out


def test_events_type_in_every_format(pg_cluster, tmp_path):
    (tmp_path / "sites.yaml").write_text(SITES_YAML)
    sites = load_sites(tmp_path / "sites.yaml")
    regmap, day = next(iter(sites.maps().values())), export_day()
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = connect_dsn(pg_cluster.create_database(name, timescale=False))
    try:
        migrate(conn, [regmap])
        write_frames(conn, _frames(regmap, day), {regmap.key: regmap})
        jobs = plan_jobs(sites, days=[day, day + timedelta(days=1)], site="site-a")
        for fmt in ("csv", "csv.gz", "parquet"):
            export_jobs(conn, jobs, DirStore(tmp_path / fmt, keep_metadata=False), fmt=fmt)
    finally:
        conn.close()
        pg_cluster.drop_database(name)
    schema = json.loads((paths.SCHEMAS_DIR / "bigquery" / "events.json").read_text())
    header, rows = parse_csv((tmp_path / "csv" / f"type=events/date={day}/site=site-a.csv")
                             .read_bytes())
    assert header == [c["name"] for c in schema]
    assert pq.read_schema(tmp_path / "parquet" / f"type=events/date={day}/site=site-a.parquet"
                          ).names == header
    assert [(r["alarm"], r["since"], r["cleared"], r["raised_value"], r["cleared_value"])
            for r in rows] == [("rack_over_temperature_fault", f"{day}T23:59:58.000000+09:00",
                                f"{day + timedelta(days=1)}T00:00:02.000000+09:00", "1", "0")]
    cols = ", ".join(f"'{c['name']}': '{_DUCK[c['type']]}'" for c in schema)
    db = duckdb.connect()
    for fmt in ("csv", "csv.gz", "parquet"):
        glob = f"{tmp_path / fmt}/type=events/*/*.{fmt}"
        source = (f"read_parquet('{glob}', hive_partitioning = true, hive_types = "
                  "{'date': DATE})" if fmt == "parquet" else
                  f"read_csv('{glob}', header = true, columns = {{{cols}}}, "
                  "hive_partitioning = true, hive_types = {'date': DATE})")
        got = db.execute(f"SELECT date, bank_id, rack_id, alarm, severity, "
                         f"epoch(cleared) - epoch(since) FROM {source} ORDER BY date").fetchall()
        assert got == [(day, 1, None, "rack_over_temperature_fault", "fault", 4.0),
                       (day + timedelta(days=1), 1, None, "rack_over_temperature_fault",
                        "fault", 4.0)], fmt
