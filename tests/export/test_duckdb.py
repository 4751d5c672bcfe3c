"""DuckDB reads the export as tables, as BigQuery's external tables would (issue 16).

Same layout, partition key (`date`, hive) and column schema (schemas/bigquery/<table>.json) as
infra/bigquery.tf: per type and format, a query filtered on date and site_id returns exactly the
database's rows (count, min/max ts, sum of a value column).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ess import paths
from ess.db.schema import table_specs
from ess.sites import load_sites
from ess_functions.export import export_jobs, plan_jobs
from ess_functions.objstore import DirStore
from export_helpers import SITES_YAML, export_day, load_db, parse_csv

TYPES = ("bank", "rack", "pcs", "etc")
FORMATS = {"csv": "csv", "csv.gz": "csv.gz", "parquet": "parquet"}
_DUCK = {"TIMESTAMP": "TIMESTAMPTZ", "INT64": "BIGINT", "FLOAT64": "DOUBLE", "STRING": "VARCHAR"}


def bq_schema(table: str) -> list[dict]:
    return json.loads((paths.SCHEMAS_DIR / "bigquery" / f"{table}.json").read_text())


def table_sql(root, table: str, fmt: str) -> str:
    """The DuckDB table expression BigQuery's external table corresponds to."""
    glob = f"{root}/type={table}/*/*.{fmt}"
    if fmt == "parquet":   # BigQuery: source_format PARQUET, schema from the files
        return f"read_parquet('{glob}', hive_partitioning = true, hive_types = {{'date': DATE}})"
    cols = ", ".join(f"'{c['name']}': '{_DUCK[c['type']]}'" for c in bq_schema(table))
    return (f"read_csv('{glob}', header = true, columns = {{{cols}}}, "
            f"hive_partitioning = true, hive_types = {{'date': DATE}})")


def _value_columns(table: str) -> tuple[str, str]:
    schema = bq_schema(table)
    ints = [c["name"] for c in schema if c["type"] == "INT64" and c["mode"] == "NULLABLE"]
    floats = [c["name"] for c in schema if c["type"] == "FLOAT64"]
    return ints[0], floats[0]


def _db_figures(conn, site, table, start, end, icol, fcol):
    cur = conn.cursor()
    cur.execute(f"SELECT count(*), min(ts), max(ts), sum({icol}), sum({fcol}::float8) "
                f"FROM {table} WHERE site_id = %s AND ts >= %s AND ts < %s", (site, start, end))
    row = cur.fetchone()
    conn.rollback()
    return row


@pytest.fixture(scope="module")
def exported(pg_cluster, tmp_path_factory):
    """One database exported in every format (two days, both sites) to local directories."""
    root = tmp_path_factory.mktemp("export")
    (root / "sites.yaml").write_text(SITES_YAML)
    sites = load_sites(root / "sites.yaml")
    day = export_day()
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = load_db(pg_cluster.create_database(name, timescale=True), sites, day)
    jobs = plan_jobs(sites, days=[day - timedelta(days=1), day])
    for fmt in FORMATS:
        summary = export_jobs(conn, jobs, DirStore(root / fmt, keep_metadata=False), fmt=fmt)
        assert summary["written"] == 20 and summary["conflicts"] == 0
    yield conn, sites, day, root
    conn.close()
    pg_cluster.drop_database(name)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("table", TYPES)
def test_duckdb_query_equals_database(exported, fmt, table):
    conn, sites, day, root = exported
    icol, fcol = _value_columns(table)
    db = duckdb.connect()
    for site in ("site-a", "site-b"):
        tz = sites.site(site).tz
        start = datetime(day.year, day.month, day.day, tzinfo=tz)
        end = start.replace(tzinfo=None) + timedelta(days=1)
        want = _db_figures(conn, site, table, start, end.replace(tzinfo=tz), icol, fcol)
        got = db.execute(f"SELECT count(*), min(ts), max(ts), sum({icol}), sum({fcol}) "
                         f"FROM {table_sql(root / fmt, table, fmt)} "
                         "WHERE date = ? AND site_id = ?", [day, site]).fetchone()
        assert got[0] == want[0] > 0, (fmt, table, site)
        assert got[1] == want[1] and got[2] == want[2], (fmt, table, site)
        assert got[3] == want[3], (fmt, table, site, icol)
        assert got[4] == pytest.approx(want[4], rel=1e-6), (fmt, table, site, fcol)
        other = db.execute(f"SELECT count(*) FROM {table_sql(root / fmt, table, fmt)} "
                           "WHERE date = ? AND site_id = ?",
                           [day - timedelta(days=1), site]).fetchone()[0]
        assert other == 0 or other < want[0]   # the day before holds only its own rows


def test_schemas_equal_csv_headers_and_parquet(exported):
    """schemas/bigquery/<table>.json == CSV header == Parquet schema; Parquet types as the DB's."""
    conn, sites, day, root = exported
    specs = table_specs(list(sites.maps().values()))
    want = {"smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(),
            "real": pa.float32(), "double precision": pa.float64(), "text": pa.string(),
            "timestamptz": pa.timestamp("us", tz="UTC"), "text[]": pa.list_(pa.string())}
    for table in TYPES:
        names = [c["name"] for c in bq_schema(table)]
        header, _ = parse_csv((root / "csv" / f"type={table}/date={day}/site=site-a.csv")
                              .read_bytes())
        schema = pq.read_schema(root / "parquet" / f"type={table}/date={day}/site=site-a.parquet")
        assert names == header == schema.names, table
        types = dict(specs[table].keys + specs[table].values)
        for field in schema:
            assert field.type == want[types[field.name]], (table, field)
    manifest = json.loads((root / "parquet" / f"_manifests/date={day}/manifest.json").read_text())
    entry = manifest["files"][f"type=bank/date={day}/site=site-a.parquet"]
    assert entry["format"] == "parquet" and entry["compression"] == "zstd"
    csv_entry = json.loads((root / "csv" / f"_manifests/date={day}/manifest.json").read_text())[
        "files"][f"type=bank/date={day}/site=site-a.csv"]
    assert entry["sha256"] == csv_entry["sha256"]   # the hash is of the rows' CSV text


def test_parquet_row_groups_stream(exported, tmp_path, monkeypatch):
    """Small row groups (as a full day gets): same rows as one group, many groups written."""
    from ess_functions.export import encode as export_stream

    conn, sites, day, root = exported
    monkeypatch.setattr(export_stream, "ROW_GROUP_BYTES", 300)
    export_jobs(conn, plan_jobs(sites, days=[day], site="site-a"),
                DirStore(tmp_path, keep_metadata=False), fmt="parquet")
    for table in TYPES:
        key = f"type={table}/date={day}/site=site-a.parquet"
        small, whole = pq.ParquetFile(tmp_path / key), pq.ParquetFile(root / "parquet" / key)
        assert small.metadata.num_row_groups > whole.metadata.num_row_groups == 1, table
        assert small.read().equals(whole.read()), table
