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
                        "real": "FLOAT64", "double precision": "FLOAT64"}.get(sql, "INT64")
            assert bq == expected, (spec.name, col, sql)
        assert [c["name"] for c in bigquery_schema(spec)][-1] == "out_of_range"
