"""SQL of the rollup upkeep: recompute whole buckets and upsert them (idempotent).

A minute is recomputed from every raw row it holds, an hour from its minutes; a bucket is
rewritten whole (`ON CONFLICT DO UPDATE` of every column), so a frame counted twice, late or
replayed gives the same values as one delivered once, in order. `last` is the value in the
bucket's latest row (NULL when that poll's block failed), as TimescaleDB's `last(value, time)`.
"""

from __future__ import annotations

from functools import lru_cache

from .quote import ident
from .rollup_schema import Measure, RollupSpec
from .schema import LEDGER

TOUCHED = "ess_touched"            # (site_id, bank_id, bucket): minutes to recompute
TOUCHED_HOURS = "ess_touched_hours"


def touched_sql(by: str = "committed") -> list[str]:
    """Temp tables of the minutes (and hours) of the frames whose ledger `by` column
    (`committed`, or `ts` for a rebuild) is in [%s, %s); the first statement takes the two."""
    bucket = f"date_trunc('minute', {ident('ts')})"
    return [
        f"CREATE TEMP TABLE {ident(TOUCHED)} ON COMMIT DROP AS "
        f"SELECT DISTINCT {ident('site_id')}, {ident('bank_id')}, {bucket} AS {ident('bucket')} "
        f"FROM {ident(LEDGER.name)} WHERE {ident(by)} >= %s AND {ident(by)} < %s",
        f"CREATE TEMP TABLE {ident(TOUCHED_HOURS)} ON COMMIT DROP AS "
        f"SELECT DISTINCT {ident('site_id')}, {ident('bank_id')}, "
        f"date_trunc('hour', {ident('bucket')}) AS {ident('bucket')} FROM {ident(TOUCHED)}",
        f"ANALYZE {ident(TOUCHED)}",
        f"ANALYZE {ident(TOUCHED_HOURS)}",
    ]


# The UTC days of the touched minutes (ess.db.rollup recomputes each run of consecutive days
# with its own statements, so the raw rows read are those of the days touched).
DAYS_SQL = (f"SELECT DISTINCT date_trunc('day', {ident('bucket')}) FROM {ident(TOUCHED)} "
            "ORDER BY 1")


def _minute(m: Measure) -> list[tuple[str | None, str | None]]:
    """(aggregate over the bucket's rows, or None: the latest row's value) per output."""
    c = f"r.{ident(m.column)}"
    if m.status:
        return [(f"bit_or({c})", None), (None, c)]
    # sum / count, not avg: avg keeps a sum of squares too (float4/8_accum), twice the work
    return [(f"min({c})", None), (f"max({c})", None),
            (f"(sum({c}::double precision) / nullif(count({c}), 0))::{m.mean_type}", None),
            (None, c), (f"count({c})::integer", None)]


def _hour(m: Measure) -> list[tuple[str | None, str | None]]:
    def col(suffix: str) -> str:
        return f"r.{ident(m.column + '_' + suffix)}"

    if m.status:
        return [(f"bit_or({col('any')})", None), (None, col("last"))]
    return [(f"min({col('min')})", None), (f"max({col('max')})", None),
            (f"(sum({col('mean')}::double precision * {col('count')}) "
             f"/ nullif(sum({col('count')}), 0))::{m.mean_type}", None),
            (None, col("last")), (f"sum({col('count')})::integer", None)]


def _upsert(spec: RollupSpec, source: str, touched: str, time_col: str,
            parts: list[tuple[str | None, str | None]], samples: str, flagged: str) -> str:
    """One aggregate pass over the rows of the touched buckets in [lo, hi) (`a`, with the time
    of each bucket's latest row), then that row by primary key for the `last` values (`l`);
    upserted. Parameters: (lo, hi) three times; literal-free bounds that still prune
    partitions and chunks at plan time (pg8000 binds them to an unnamed statement, planned
    with their values)."""
    groups = spec.group_keys
    names = [n for n, _ in spec.table.values]
    parts = [(samples, None), *parts, (flagged, None)]
    b, last = ident("ess_bucket"), ident("ess_last")
    tcol = f"r.{ident(time_col)}"
    on = " AND ".join(f"r.{ident(k)} = t.{ident(k)}" for k in ("site_id", "bank_id"))
    if "rack_id" in groups and time_col == "ts" and spec.racks:
        # the raw rack key is (site, bank, rack, ts): naming every rack makes each probe a
        # time range per rack, not every row of the bank in the partition
        on += (f" AND r.{ident('rack_id')} = ANY('{{"
               f"{','.join(str(k) for k in range(1, spec.racks + 1))}}}'::smallint[])")
    aggs = [f"{agg} AS {ident(n)}" for n, (agg, _) in zip(names, parts, strict=True) if agg]
    out = [f"a.{ident(n)}" if agg else last_value.replace("r.", "l.", 1)
           for n, (agg, last_value) in zip(names, parts, strict=True)]
    by_key = " AND ".join([f"l.{ident(k)} = a.{ident(k)}" for k in groups]
                          + [f"l.{ident(time_col)} = a.{last}"])
    keys = [f"t.{ident('bucket')}", *(f"r.{ident(k)}" for k in groups)]
    conflict = ", ".join(ident(k) for k in (*groups, "bucket"))
    sets = ", ".join(f"{ident(n)} = EXCLUDED.{ident(n)}" for n in names)
    return (f"WITH a AS (SELECT t.{ident('bucket')} AS {b}, "
            f"{', '.join(f'r.{ident(k)}' for k in groups)}, {', '.join(aggs)}, "
            f"max({tcol}) AS {last}\n"
            f"  FROM {ident(touched)} t JOIN {ident(source)} r ON {on} "
            f"AND date_trunc('{spec.width.split()[1]}', {tcol}) = t.{ident('bucket')} "
            f"AND {tcol} >= t.{ident('bucket')} "
            f"AND {tcol} < t.{ident('bucket')} + interval '{spec.width}'\n"
            f"  WHERE {tcol} >= %s AND {tcol} < %s AND t.{ident('bucket')} >= %s "
            f"AND t.{ident('bucket')} < %s GROUP BY {', '.join(keys)})\n"
            f"INSERT INTO {ident(spec.name)} "
            f"({', '.join(ident(c) for c in ['bucket', *groups, *names])})\n"
            f"SELECT a.{b}, {', '.join(f'a.{ident(k)}' for k in groups)}, {', '.join(out)}\n"
            f"FROM a JOIN {ident(source)} l ON {by_key} "
            f"AND l.{ident(time_col)} >= %s AND l.{ident(time_col)} < %s\n"
            f"ON CONFLICT ({conflict}) DO UPDATE SET {sets}")


@lru_cache(maxsize=64)
def minute_sql(spec: RollupSpec) -> str:
    """Recompute the touched minutes in [lo, hi) of `spec` (a `1m` table) from raw rows."""
    parts = [p for m in spec.measures for p in _minute(m)]
    return _upsert(spec, spec.source, TOUCHED, "ts", parts, "count(*)::integer",
                   f"count(r.{ident('out_of_range')})::integer")


@lru_cache(maxsize=64)
def hour_sql(spec: RollupSpec) -> str:
    """Recompute the touched hours in [lo, hi) of `spec` (a `1h` table) from its minutes."""
    parts = [p for m in spec.measures for p in _hour(m)]
    return _upsert(spec, f"{spec.source}_1m", TOUCHED_HOURS, "bucket", parts,
                   f"sum(r.{ident('samples')})::integer",
                   f"sum(r.{ident('out_of_range_rows')})::integer")
