"""SQL of the daily export: one `COPY (SELECT ...) TO STDOUT` per table, bound through settings.

COPY takes no bind parameters, so the site and the day's bounds are set with `set_config` (bound
parameters) and read back in the query with `current_setting`. Identifiers go through `ident`.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ess.db.bigquery import export_columns
from ess.db.quote import ident
from ess.db.schema import TableSpec

# ISO 8601, microseconds, the session time zone's offset: 2026-11-25T00:00:00.000000+09:00
TS_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.USTZH:TZM'
OOR_SEPARATOR = ";"
SORT_MEMORY = "64MB"  # work_mem for the export's sorts (a site-day of racks sorts in memory)
_SITE, _START, _END = "ess.export_site", "ess.export_start", "ess.export_end"
# One snapshot per site-day: every COPY in it sees the same rows, so a hash pass and an upload
# pass agree.
SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"


def day_window(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[00:00, 24:00) of `day` in `tz` (23 or 25 hours on DST changes), as aware datetimes."""
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start, end


def copy_sql(spec: TableSpec) -> str:
    """COPY of one site-day of a table, sorted by time, then bank (and rack).

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
            f"AND {t}.{ident('ts')} >= current_setting('{_START}')::timestamptz "
            f"AND {t}.{ident('ts')} < current_setting('{_END}')::timestamptz "
            f"ORDER BY {', '.join(order)}) TO STDOUT WITH (FORMAT csv, HEADER)")


def scope_snapshot(cur, site_id: str, tz: str, start: datetime, end: datetime) -> None:
    """Scope a SNAPSHOT transaction to one site-day in the site's zone (its COPYs read it)."""
    cur.execute("SELECT set_config('TimeZone', %s, true), set_config('extra_float_digits', '1', "
                "true), set_config('work_mem', %s, true), set_config(%s, %s, true), "
                "set_config(%s, %s, true), set_config(%s, %s, true)",
                (tz, SORT_MEMORY, _SITE, site_id, _START, start.isoformat(), _END,
                 end.isoformat()))
