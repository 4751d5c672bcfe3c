"""schemas/bigquery/*.json: rendered from the register maps and current (`ess map bigquery`)."""

from __future__ import annotations

from ess import paths
from ess.db.bigquery import bigquery_schema, project_maps, render_bigquery
from ess.db.schema import table_specs


def test_bigquery_schemas_are_current():
    rendered = render_bigquery(project_maps())
    folder = paths.SCHEMAS_DIR / "bigquery"
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(rendered), \
        "run: ess map bigquery --out schemas/bigquery"
    for name, text in rendered.items():
        assert (folder / name).read_text() == text, f"{name} is stale: run ess map bigquery"


def test_bigquery_types_follow_the_column_types():
    specs = table_specs(project_maps())
    for spec in specs.values():
        types = dict(spec.keys + spec.values)
        for col in bigquery_schema(spec):
            sql, bq = types[col["name"]], col["type"]
            expected = {"timestamptz": "TIMESTAMP", "text": "STRING", "text[]": "STRING",
                        "real": "FLOAT64", "double precision": "FLOAT64",
                        "numeric(20)": "NUMERIC", "numeric": "STRING"}.get(sql, "INT64")
            assert bq == expected, (spec.name, col, sql)
        assert [c["name"] for c in bigquery_schema(spec)][-1] == "out_of_range"


def test_every_column_type_maps_alike_in_bigquery_and_parquet():
    """Each type a map or a union of maps can give a column (wider's list) has a BigQuery and a
    Parquet type, and the two agree (a widened plain numeric is decimal text in both)."""
    import pyarrow as pa
    from ess.db.schema import _WIDTH, KEYS, TableSpec
    from ess_functions.export.encode import arrow_schema

    values = tuple((f"c{i}", t) for i, t in enumerate(_WIDTH)) + (("out_of_range", "text[]"),)
    spec = TableSpec("any", KEYS["bank"], values)
    arrow = arrow_schema(spec)
    kinds = {"INT64": pa.types.is_integer, "FLOAT64": pa.types.is_floating,
             "NUMERIC": pa.types.is_decimal, "TIMESTAMP": pa.types.is_timestamp,
             "STRING": lambda t: pa.types.is_string(t) or pa.types.is_list(t)}
    for col in bigquery_schema(spec):
        assert kinds[col["type"]](arrow.field(col["name"]).type), col
    types = {c["name"]: c["type"] for c in bigquery_schema(spec)}
    assert types[f"c{_WIDTH.index('numeric')}"] == "STRING"
