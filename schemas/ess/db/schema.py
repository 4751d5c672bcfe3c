"""Table layouts derived from register maps, and their DDL."""

from __future__ import annotations

from dataclasses import dataclass

from ..regmap import Field, RegisterMap
from .quote import ident

CHUNK_INTERVAL = "1 day"     # 1 Hz data: one chunk/partition per UTC day
PARTITIONS_AHEAD_DAYS = 7    # partitioned mode creates this many future days


def sql_type(f: Field) -> str:
    """Storage type for a field: the smallest type that holds every value exactly."""
    if f.bit is not None:
        return "smallint"
    if f.scale == 1 and f.type in ("int16",):
        return "smallint"
    if f.scale == 1 and f.type in ("uint16", "int32"):
        return "integer"
    if f.scale == 1 and f.type == "uint32":
        return "bigint"
    if f.type in ("int16", "uint16"):
        return "real"           # |raw| <= 65535 with <= 3 decimals: exact in float4's 7 digits
    return "double precision"


@dataclass(frozen=True)
class TableSpec:
    """A time-series table: key columns then value columns."""

    name: str
    keys: tuple[tuple[str, str], ...]
    values: tuple[tuple[str, str], ...]

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.keys)

    @property
    def value_names(self) -> tuple[str, ...]:
        return tuple(v for v, _ in self.values)


KEYS = {
    "bank": (("ts", "timestamptz"), ("site_id", "text"), ("bank_id", "smallint")),
    "rack": (("ts", "timestamptz"), ("site_id", "text"), ("bank_id", "smallint"),
             ("rack_id", "smallint")),
    "pcs": (("ts", "timestamptz"), ("site_id", "text"), ("bank_id", "smallint")),
    "etc": (("ts", "timestamptz"), ("site_id", "text"), ("bank_id", "smallint")),
}


def table_specs(maps: list[RegisterMap]) -> dict[str, TableSpec]:
    """Tables needed by all the maps: the union of their columns (first map's order first)."""
    cols: dict[str, dict[str, str]] = {}
    for m in maps:
        for table in m.tables():
            t = cols.setdefault(table, {})
            for f in m.table_fields(table):
                typ = sql_type(f)
                if t.setdefault(f.column, typ) != typ:
                    t[f.column] = wider(t[f.column], typ)
    return {name: TableSpec(name, KEYS[name], tuple(c.items()) + (("out_of_range", "text[]"),))
            for name, c in cols.items()}


_WIDTH = ["smallint", "integer", "bigint", "real", "double precision"]


def wider(a: str, b: str) -> str:
    """The type that holds both; real and bigint widen to double precision."""
    if {a, b} == {"bigint", "real"}:
        return "double precision"
    return max(a, b, key=_WIDTH.index)


def create_table_sql(spec: TableSpec) -> str:
    cols = [f"{ident(n)} {t} NOT NULL" for n, t in spec.keys]
    cols += [f"{ident(n)} {t}" for n, t in spec.values]
    pk = ", ".join(ident(k) for k in spec.key_names[1:] + ("ts",))
    return (f"CREATE TABLE IF NOT EXISTS {ident(spec.name)} (\n  " + ",\n  ".join(cols)
            + f",\n  PRIMARY KEY ({pk})\n)")


def hypertable_sql(spec: TableSpec) -> str:
    return (f"SELECT create_hypertable('{ident(spec.name)}', 'ts', "
            f"chunk_time_interval => INTERVAL '{CHUNK_INTERVAL}', if_not_exists => TRUE)")


ENSURE_PARTITIONS_FN = """
CREATE OR REPLACE FUNCTION ess_ensure_partitions(parent regclass, days_ahead int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  d date := (now() AT TIME ZONE 'UTC')::date - 1;
  made int := 0;
  part text;
  base text := (SELECT relname FROM pg_class WHERE oid = parent);
BEGIN
  WHILE d <= (now() AT TIME ZONE 'UTC')::date + days_ahead LOOP
    part := base || '_p' || to_char(d, 'YYYYMMDD');
    IF to_regclass(quote_ident(part)) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                     part, parent, d::timestamp AT TIME ZONE 'UTC',
                     (d + 1)::timestamp AT TIME ZONE 'UTC');
      made := made + 1;
    END IF;
    d := d + 1;
  END LOOP;
  RETURN made;
END $$
"""


def partitioned_sql(spec: TableSpec) -> list[str]:
    """DDL for a natively partitioned table (range on ts, one partition per UTC day)."""
    create = create_table_sql(spec) + " PARTITION BY RANGE (ts)"
    default = (f"CREATE TABLE IF NOT EXISTS {ident(spec.name + '_default')} "
               f"PARTITION OF {ident(spec.name)} DEFAULT")
    ensure = f"SELECT ess_ensure_partitions('{ident(spec.name)}', {PARTITIONS_AHEAD_DAYS})"
    return [create, default, ensure]


def render_schema(maps: list[RegisterMap], mode: str) -> str:
    """The full DDL for a fresh database (rendered into schemas/sql/)."""
    specs = table_specs(maps)
    out = []
    if mode == "partitioned":
        out.append(ENSURE_PARTITIONS_FN.strip())
    for spec in specs.values():
        if mode == "timescale":
            out += [create_table_sql(spec), hypertable_sql(spec)]
        else:
            out += partitioned_sql(spec)
    return ";\n\n".join(out) + ";\n"
