"""Rollup tables derived from the register maps: 1-minute and 1-hour aggregates per site, bank
(and rack) of every data table, in both database modes (docs/data-spec.md, "Rollups").

Plain tables in both modes (no continuous aggregates: neither TimescaleDB's Apache edition nor
Cloud SQL has them); `ess.db.rollup` keeps them current from the raw rows. A numeric column `c`
gives `c_min`, `c_max`, `c_mean`, `c_last`, `c_count`; a bit or status column gives `c_any`
(the OR of every value: a bit set at any time in the bucket) and `c_last`. Every rollup row has
`samples` (raw rows in the bucket) and `out_of_range_rows` (raw rows with a flagged value).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..regmap import Field, RegisterMap
from .quote import ident
from .schema import KEYS, TableSpec, table_specs

# (suffix, bucket width): minutes from raw rows, hours from minutes.
LEVELS = (("1m", "1 minute"), ("1h", "1 hour"))
_STATUS_TYPES = frozenset({"smallint", "integer", "bigint"})   # bit_or needs an integer type

# The rollup job's progress: the ledger commit time up to which every frame is rolled up.
ROLLUP_STATE = TableSpec("ess_rollup_state", (("name", "text"),), (
    ("watermark", "timestamptz"), ("updated", "timestamptz")))


def is_status(f: Field, regmap: RegisterMap) -> bool:
    """A bit, a register of a status block (`scaled: false`), or an unscaled integer with no
    unit and no range (a status or protection word such as `pcs_status_0`)."""
    return (f.type in ("bits", "bit") or not regmap.block(f.block).scaled
            or (f.is_integer and not f.unit and f.min is None and f.max is None))


@dataclass(frozen=True)
class Measure:
    """One data column and the rollup columns it gives."""

    column: str
    sql_type: str
    status: bool

    @property
    def mean_type(self) -> str:
        """`real` for a real column (at most 5 significant digits: a real mean of 57.8s is 57.8,
        as min and max show it), else double precision."""
        return "real" if self.sql_type == "real" else "double precision"

    @property
    def outputs(self) -> tuple[tuple[str, str], ...]:
        c, t = self.column, self.sql_type
        if self.status:
            return ((f"{c}_any", t), (f"{c}_last", t))
        return ((f"{c}_min", t), (f"{c}_max", t), (f"{c}_mean", self.mean_type),
                (f"{c}_last", t), (f"{c}_count", "integer"))


@dataclass(frozen=True)
class RollupSpec:
    """One rollup table: its source table, level (`1m`, `1h`) and measures."""

    source: str
    level: str
    width: str
    measures: tuple[Measure, ...]
    racks: int = 0                      # rack ids 1..racks (the rack table's maps' most)

    @property
    def name(self) -> str:
        return f"{self.source}_{self.level}"

    @property
    def group_keys(self) -> tuple[str, ...]:
        """site_id, bank_id (and rack_id): the source's key without ts."""
        return tuple(k for k, _ in KEYS[self.source][1:])

    @property
    def table(self) -> TableSpec:
        keys = (("bucket", "timestamptz"), *KEYS[self.source][1:])
        values = [("samples", "integer")]
        values += [o for m in self.measures for o in m.outputs]
        values.append(("out_of_range_rows", "integer"))
        for name, _ in values:
            ident(name)     # a column name too long for a rollup suffix fails here, clearly
        # bucket before rack: a bank's time range is one index range, whatever its racks
        pk = ("site_id", "bank_id", "bucket", *self.group_keys[2:])
        return TableSpec(self.name, keys, tuple(values), pk)


def rollup_specs(maps: list[RegisterMap]) -> dict[str, RollupSpec]:
    """Rollup tables for the data tables of `maps` (both levels), by table name."""
    return dict(_specs(tuple(maps)))


@lru_cache(maxsize=64)
def _specs(maps: tuple[RegisterMap, ...]) -> tuple[tuple[str, RollupSpec], ...]:
    status: dict[tuple[str, str], bool] = {}
    for m in maps:
        for table in m.tables():
            for f in m.table_fields(table):
                key = (table, f.column)     # status only when every map says so
                status[key] = status.get(key, True) and is_status(f, m)
    out = []
    racks = max((m.racks for m in maps if "rack" in m.tables()), default=0)
    for table, spec in table_specs(list(maps)).items():
        measures = tuple(
            Measure(name, typ, status.get((table, name), False) and typ in _STATUS_TYPES)
            for name, typ in spec.values if name != "out_of_range")
        out += [(f"{table}_{level}", RollupSpec(table, level, width, measures,
                                                racks if table == "rack" else 0))
                for level, width in LEVELS]
    return tuple(out)
