"""A widened plain `numeric` column (a uint64 and a float register in one column) in the export:
Parquet and BigQuery both carry its exact decimal text, as the CSV does."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
from ess.db.bigquery import bigquery_schema
from ess.db.connect import connect_dsn
from ess.db.schema import KEYS, TableSpec, create_table_sql, wider
from ess.wire.transaction import transaction
from ess_functions.export.encode import FORMATS, arrow_schema, copy
from ess_functions.export.sql import SNAPSHOT, copy_sql, scope_snapshot

SPEC = TableSpec("wide", KEYS["bank"], (("v", "numeric"), ("f", "real"),
                                        ("out_of_range", "text[]")))
# uint64's top, a real and a double widened to numeric (the double has 301 digits), NaN, NULL
VALUES = ["18446744073709551615", "0.1::real", "1e300::float8", "-2.5e-7::float8", "'NaN'",
          "NULL"]


def test_numeric_union_is_the_widened_type():
    assert wider("numeric(20)", "real") == "numeric"
    assert wider("double precision", "numeric(20)") == "numeric"


def test_widened_numeric_exports_exactly_to_parquet(plain_db):
    conn = connect_dsn(plain_db)
    cur = conn.cursor()
    cur.execute(create_table_sql(SPEC))
    t0 = datetime(2026, 1, 2, tzinfo=UTC)
    for i, v in enumerate(VALUES):   # fixed literals of this test, not input
        cur.execute(f"INSERT INTO wide (ts, site_id, bank_id, v, f) VALUES (%s, 's', 1, "
                    f"({v})::numeric, 1.5)", (t0 + timedelta(seconds=i),))
    conn.commit()
    text, parquet = io.BytesIO(), io.BytesIO()
    with transaction(conn, begin=SNAPSHOT) as snap:
        scope_snapshot(snap, "s", "UTC")
        window = (t0, t0 + timedelta(days=1))
        copy(snap, copy_sql(SPEC, *window), text, FORMATS["csv"], SPEC)
        copy(snap, copy_sql(SPEC, *window), parquet, FORMATS["parquet"], SPEC)
    conn.close()
    rows = list(csv.DictReader(io.StringIO(text.getvalue().decode())))
    table = pq.read_table(io.BytesIO(parquet.getvalue()))
    assert table.schema == arrow_schema(SPEC)
    assert str(table.schema.field("v").type) == "string"
    stored = table.column("v").to_pylist()
    assert stored == [r["v"] or None for r in rows]
    assert stored[0] == "18446744073709551615" and stored[-1] is None
    assert stored[2] == "1" + "0" * 300 and stored[4] == "NaN"
    assert table.column("f").to_pylist() == [1.5] * len(VALUES)
    by_name = {c["name"]: c["type"] for c in bigquery_schema(SPEC)}
    assert by_name["v"] == "STRING" and by_name["f"] == "FLOAT64"
