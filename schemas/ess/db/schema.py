"""Table layouts derived from register maps, and their DDL."""

from __future__ import annotations

from dataclasses import dataclass

from ..events.sql import ddl as events_ddl
from ..regmap import Field, RegisterMap
from .partitions import PARTITION_FUNCTIONS
from .quote import ident

CHUNK_INTERVAL = "1 day"     # 1 Hz data: one chunk/partition per UTC day
PARTITIONS_AHEAD_DAYS = 7    # partitioned mode creates this many future days


# Unscaled integer types and the smallest SQL type holding every value exactly. uint64 goes
# above bigint's 2^63 - 1, so it is numeric(20) (exact to 18446744073709551615).
_INTEGER_SQL = {"int16": "smallint", "uint16": "integer", "int32": "integer",
                "uint32": "bigint", "int64": "bigint", "uint64": "numeric(20)"}


def sql_type(f: Field) -> str:
    """Storage type for a field: the smallest type that holds every value exactly."""
    if f.type in ("bits", "bit"):
        return "smallint"
    if f.is_integer:
        return _INTEGER_SQL[f.type]
    if f.type in ("int16", "uint16"):
        return "real"           # |raw| <= 65535 scaled by a power of ten: 5 digits, within real's
    return "double precision"   # float32/64, and scaled 32/64-bit integers (exact to 2^53)


@dataclass(frozen=True)
class TableSpec:
    """A time-series table: key columns then value columns."""

    name: str
    keys: tuple[tuple[str, str], ...]
    values: tuple[tuple[str, str], ...]
    primary_key: tuple[str, ...] | None = None   # default: the keys, time last

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


# The frame ledger (docs/data-status.md): one row per frame, written in the statement that
# stores the frame's rows. `failed` lists `block:kind` of the blocks that did not read ok
# (NULL when all did); `crc` is the CRC-32 of every block's registers (NULL unless all read).
LEDGER = TableSpec("frames", KEYS["bank"], (
    ("seq", "bigint"), ("map_id", "text"), ("map_version", "smallint"),
    ("poll_us", "integer"), ("published", "timestamptz"), ("committed", "timestamptz"),
    ("crc", "integer"), ("failed", "text[]"), ("out_of_range", "smallint")))
# Daily data status per site, bank and local day, written by the export (one row, replaced).
DATA_STATUS = TableSpec("data_status", (("day", "date"), ("site_id", "text"),
                                        ("bank_id", "smallint")), (
    ("timezone", "text"), ("expected", "integer"), ("stored", "integer"),
    ("completeness", "double precision"), ("lost", "integer"), ("resets", "integer"),
    ("missed", "integer"), ("failed_polls", "integer"), ("failed", "jsonb"),
    ("out_of_range", "integer"), ("first_poll", "timestamptz"), ("last_poll", "timestamptz"),
    ("max_lag_s", "double precision"), ("frozen_s", "integer"), ("computed", "timestamptz")))


def ledger_ddl(mode: str) -> list[str]:
    """DDL of the ledger (a time-series table like the data) and of `data_status`."""
    series = ([create_table_sql(LEDGER), hypertable_sql(LEDGER)] if mode == "timescale"
              else partitioned_sql(LEDGER))
    return series + [create_table_sql(DATA_STATUS)]


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


_WIDTH = ["smallint", "integer", "bigint", "numeric(20)", "real", "double precision",
          "numeric"]


def wider(a: str, b: str) -> str:
    """The type that holds both; real and bigint widen to double precision, numeric(20) and a
    floating type to numeric."""
    if {a, b} == {"bigint", "real"}:
        return "double precision"
    if "numeric(20)" in (a, b) and {a, b} & {"real", "double precision"}:
        return "numeric"
    return max(a, b, key=_WIDTH.index)


def create_table_sql(spec: TableSpec) -> str:
    cols = [f"{ident(n)} {t} NOT NULL" for n, t in spec.keys]
    cols += [f"{ident(n)} {t}" for n, t in spec.values]
    pk = ", ".join(ident(k) for k in spec.primary_key
                   or spec.key_names[1:] + spec.key_names[:1])
    return (f"CREATE TABLE IF NOT EXISTS {ident(spec.name)} (\n  " + ",\n  ".join(cols)
            + f",\n  PRIMARY KEY ({pk})\n)")


def hypertable_sql(spec: TableSpec) -> str:
    return (f"SELECT create_hypertable('{ident(spec.name)}', 'ts', "
            f"chunk_time_interval => INTERVAL '{CHUNK_INTERVAL}', if_not_exists => TRUE, "
            # the primary key (site, bank, [rack,] ts) serves every ts lookup we make
            "create_default_indexes => FALSE)")


# The partition upkeep functions (ess.db.partitions), one statement each.
ENSURE_PARTITIONS_FN = PARTITION_FUNCTIONS


def partitioned_sql(spec: TableSpec) -> list[str]:
    """DDL for a natively partitioned table (range on ts, one partition per UTC day).

    No default partition: a write to a day without one creates it (ess.db.partitions).
    """
    create = create_table_sql(spec) + " PARTITION BY RANGE (ts)"
    ensure = f"SELECT ess_ensure_partitions('{ident(spec.name)}', {PARTITIONS_AHEAD_DAYS})"
    return [create, ensure]


def render_schema(maps: list[RegisterMap], mode: str) -> str:
    """The full DDL for a fresh database (rendered into schemas/sql/)."""
    specs = table_specs(maps)
    out = []
    if mode == "partitioned":
        out += ENSURE_PARTITIONS_FN
    for spec in specs.values():
        if mode == "timescale":
            out += [create_table_sql(spec), hypertable_sql(spec)]
        else:
            out += partitioned_sql(spec)
    out += ledger_ddl(mode) + events_ddl()
    from .rollup_ddl import render_upkeep  # rollups and retention (issue 23); imports us

    out += render_upkeep(maps)
    return ";\n\n".join(out) + ";\n"
