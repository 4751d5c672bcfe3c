"""SQL of the daily export: one `COPY (SELECT ...) TO STDOUT` per table.

COPY takes no bind parameters. The site is set with `set_config` (a bound parameter) and read back
with `current_setting`; the day's bounds are `timestamptz` literals of the computed day window
(`ess.db.quote.timestamptz`, never input), because the planner prunes partitions and chunks only
by constants: with `current_setting()` bounds it opened and locked every partition of the table
(thousands after a few years, beyond a small Cloud SQL instance's lock table). Identifiers go
through `ident`.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ess.db.bigquery import EVENTS_EXPORT, export_columns
from ess.db.quote import ident, timestamptz
from ess.db.schema import TableSpec

# ISO 8601, microseconds, the session time zone's offset: 2026-11-25T00:00:00.000000+09:00
TS_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.USTZH:TZM'
OOR_SEPARATOR = ";"
SORT_MEMORY = "64MB"  # work_mem for the export's sorts (a site-day of racks sorts in memory)
_SITE = "ess.export_site"
# One snapshot per site-day: every COPY in it sees the same rows, so a hash pass and an upload
# pass agree.
SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"


def day_window(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[00:00, 24:00) of `day` in `tz` (23 or 25 hours on DST changes), as aware datetimes."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start, end


def copy_sql(spec: TableSpec, start: datetime, end: datetime) -> str:
    """COPY of one site-day [start, end) of a table, sorted by time, then bank (and rack).

    Filters and ORDER BY name the table's columns through its alias (`t.ts` is the timestamptz;
    a bare `ts` in ORDER BY would mean the formatted text column).
    """
    t = ident("t")
    cols = []
    for name in export_columns(spec):
        if name == "ts":
            cols.append(f"to_char({t}.{ident('ts')}, '{TS_FORMAT}') AS {ident('ts')}")
        elif name == "out_of_range":
            cols.append(f"array_to_string({t}.{ident(name)}, '{OOR_SEPARATOR}') "
                        f"AS {ident(name)}")
        else:
            cols.append(f"{t}.{ident(name)}")
    order = [f"{t}.{ident(k)}" for k in ("ts", "bank_id", "rack_id") if k in spec.key_names]
    return (f"COPY (SELECT {', '.join(cols)} FROM {ident(spec.name)} AS {t} "
            f"WHERE {t}.{ident('site_id')} = current_setting('{_SITE}') "
            f"AND {t}.{ident('ts')} >= {timestamptz(start)} "
            f"AND {t}.{ident('ts')} < {timestamptz(end)} "
            f"ORDER BY {', '.join(order)}) TO STDOUT WITH (FORMAT csv, HEADER)")


def events_copy_sql(start: datetime, end: datetime) -> str:
    """COPY of the alarm episodes that overlap one site-day [start, end) (docs/events.md), by
    start (the events table is not partitioned: no pruning to ask for)."""
    t = ident("t")
    cols = [f"to_char({t}.{ident(n)}, '{TS_FORMAT}') AS {ident(n)}" if typ == "timestamptz"
            else f"{t}.{ident(n)}" for n, typ in EVENTS_EXPORT.keys + EVENTS_EXPORT.values]
    order = ", ".join(f"{t}.{ident(k)}" for k in ("since", "bank_id", "rack_id", "alarm"))
    return (f"COPY (SELECT {', '.join(cols)} FROM {ident(EVENTS_EXPORT.name)} AS {t} "
            f"WHERE {t}.{ident('site_id')} = current_setting('{_SITE}') "
            f"AND {t}.{ident('since')} < {timestamptz(end)} "
            f"AND ({t}.{ident('cleared')} IS NULL OR {t}.{ident('cleared')} >= "
            f"{timestamptz(start)}) ORDER BY {order}) TO STDOUT WITH (FORMAT csv, HEADER)")


def type_copy_sql(spec: TableSpec, start: datetime, end: datetime) -> str:
    """The COPY of one export type of a site-day (a table of rows, or the events)."""
    return (events_copy_sql(start, end) if spec is EVENTS_EXPORT
            else copy_sql(spec, start, end))


def scope_snapshot(cur, site_id: str, tz: str) -> None:
    """Scope a SNAPSHOT transaction to one site in its zone (its COPYs read it)."""
    cur.execute("SELECT set_config('TimeZone', %s, true), set_config('extra_float_digits', '1', "
                "true), set_config('work_mem', %s, true), set_config(%s, %s, true)",
                (tz, SORT_MEMORY, _SITE, site_id))
