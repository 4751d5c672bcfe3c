"""Column layout of the daily export files and the BigQuery table schemas derived from it.

The export files (CSV, CSV.gz, Parquet) and the BigQuery external tables over them share one
column list per table: the keys, `ts`, the value columns in map order (the union of the maps, as
in the database), then `out_of_range`. `schemas/bigquery/<table>.json` is rendered from the
register maps by `ess schema bigquery --out schemas/bigquery` (a test checks it is current).
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import paths
from ..events.sql import COLUMNS as EVENT_COLUMNS
from ..regmap import RegisterMap, load_map_file
from .schema import TableSpec, table_specs

_INT = {"smallint", "integer", "bigint"}
_FLOAT = {"real", "double precision"}
_KEYS = ("site_id", "bank_id", "rack_id")


# The `events` type (docs/events.md): one row per alarm episode that overlaps the site-local
# day, as it stood at the export; its columns are those of the `events` table.
EVENTS_EXPORT = TableSpec("events", (("site_id", "text"), ("bank_id", "smallint")), tuple(
    (name, typ.replace(" NOT NULL", "")) for name, typ in EVENT_COLUMNS[2:]))


def export_columns(spec: TableSpec) -> list[str]:
    """File header: site_id, bank_id, [rack_id], ts, value columns in map order, out_of_range
    (the events type: its table's columns)."""
    keys = [k for k in _KEYS if k in spec.key_names]
    return keys + (["ts"] if "ts" in spec.key_names else []) + list(spec.value_names)


def bigquery_type(sql_type: str) -> str:
    """The BigQuery type of a column as the CSV files carry it."""
    if sql_type == "timestamptz":
        return "TIMESTAMP"
    if sql_type in _INT:
        return "INT64"
    if sql_type in _FLOAT:
        return "FLOAT64"
    if sql_type == "numeric(20)":
        return "NUMERIC"    # uint64: 0..2^64-1 fits NUMERIC's 29 integer digits exactly
    if sql_type == "numeric":
        return "STRING"     # uint64 widened with a float: digits beyond even BIGNUMERIC's
    if sql_type in ("text", "text[]"):
        return "STRING"     # text, and text[] (out_of_range: names joined by ';')
    raise ValueError(f"no BigQuery type for SQL type {sql_type!r}")


def bigquery_schema(spec: TableSpec) -> list[dict]:
    """BigQuery column schema (JSON form) of one table's export files, in file column order."""
    types = dict(spec.keys + spec.values)
    keys = set(spec.key_names)
    return [{"name": c, "type": bigquery_type(types[c]),
             "mode": "REQUIRED" if c in keys else "NULLABLE"} for c in export_columns(spec)]


def project_maps() -> list[RegisterMap]:
    """The maps in schemas/maps, `default` first (its column order leads, as in the database)."""
    files = sorted(paths.MAPS_DIR.glob("*.yaml"), key=lambda p: (p.stem != "default", p.stem))
    return [load_map_file(p) for p in files]


def export_specs(maps: list[RegisterMap]) -> dict[str, TableSpec]:
    """The export types of the maps: their tables, and `events` when one declares alarms."""
    specs = table_specs(maps)
    if any(m.alarms for m in maps):
        specs[EVENTS_EXPORT.name] = EVENTS_EXPORT
    return specs


def render_bigquery(maps: list[RegisterMap]) -> dict[str, str]:
    """`<type>.json` file name -> its text, for every export type of the maps."""
    return {f"{name}.json": json.dumps(bigquery_schema(spec), indent=2) + "\n"
            for name, spec in export_specs(maps).items()}


def write_bigquery(maps: list[RegisterMap], out: str | Path) -> list[Path]:
    """Write the schema files into directory `out`; return their paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render_bigquery(maps).items():
        (folder / name).write_text(text)
        paths.append(folder / name)
    return paths
