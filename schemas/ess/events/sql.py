"""The `events` table: DDL (created by `ess db migrate`) and the statements that maintain it.

One row per episode. A plain table in both storage modes (not a hypertable, not partitioned):
retention that drops old raw partitions never touches it (docs/events.md).
"""

from __future__ import annotations

from ..db.quote import ident

TABLE = "events"
LOCK_NAMESPACE = 0x455354   # pg_advisory_xact_lock(namespace, crc32 of "site/bank")
# The columns, in the order of the DDL, the export and `ess events --json`.
COLUMNS = (
    ("site_id", "text NOT NULL"),
    ("bank_id", "smallint NOT NULL"),
    ("rack_id", "smallint"),                       # NULL: a bank-level alarm (no rack)
    ("alarm", "text NOT NULL"),
    ("severity", "text NOT NULL"),
    ("since", "timestamptz NOT NULL"),              # first poll of the condition
    ("raised", "timestamptz NOT NULL"),             # the poll that raised it
    ("raised_value", "double precision"),
    ("cleared", "timestamptz"),                     # NULL while active
    ("cleared_value", "double precision"),
)
# Not derived, not exported: the `raised` an episode was inserted with (its log line), kept by
# its updates so that a late frame splitting it leaves that identity with the part announced.
ANNOUNCED = ("announced", "timestamptz")

# A batch's first step, in the writer's statement (or, in the slow path, one of its own): take
# the banks' locks (keys in the order given), then read, in a snapshot taken after the locks
# were granted (each query of a VOLATILE function takes a fresh one), the episodes overlapping
# each bank's [lo, hi]. `steady` holds per bank the keys `alarm/rack` (rack 0: none) the batch
# raises or holds and never clears, space-separated. An episode of a steady key active across
# the whole batch cannot change, and is left out; the bank's own row (alarm NULL) lists the
# steady keys without such an episode (`uncovered`, usually none), so a bank with many
# standing alarms costs one short row. Both sides of that comparison are hashed (IN and NOT IN
# over a subquery): a bank with hundreds of standing alarms costs one pass, not their square.
# Floats read back as their shortest decimal (what the
# decoder computed), whatever the server's default. No JIT: row estimates are guesses, and
# compiling costs ~100 ms a call.
LOCK_FUNCTION = ("ess_events_lock(integer[],text[],integer[],timestamp with time zone[],"
                 "timestamp with time zone[],text[])")
LOCK_VERSION = "ess events lock 11"    # its comment: `ess db migrate` replaces an older one
LOCK_FUNCTION_SQL = f"""CREATE OR REPLACE FUNCTION ess_events_lock(keys int[], sites text[],
    banks int[], lo timestamptz[], hi timestamptz[], steady text[])
RETURNS TABLE (site_id text, bank_id smallint, rack_id smallint, alarm text, severity text,
               since timestamptz, raised timestamptz, raised_value double precision,
               cleared timestamptz, cleared_value double precision, announced timestamptz,
               uncovered text)
LANGUAGE plpgsql VOLATILE SET jit = off AS $$
#variable_conflict use_column
DECLARE
  i int;
  st text[];
BEGIN
  PERFORM set_config('extra_float_digits', '1', true);
  PERFORM pg_advisory_xact_lock({LOCK_NAMESPACE}, k) FROM unnest(keys) AS k;
  FOR i IN 1 .. coalesce(array_length(sites, 1), 0) LOOP
    st := string_to_array(steady[i], ' ');
    RETURN QUERY
      WITH b AS MATERIALIZED (
        SELECT e.*, e.alarm || '/' || coalesce(e.rack_id, 0) AS k,
               e.raised < lo[i] AND (e.cleared IS NULL OR e.cleared > hi[i]) AS across
          FROM {ident(TABLE)} e
         WHERE e.site_id = sites[i] AND e.bank_id = banks[i] AND e.since <= hi[i]
           AND (e.cleared IS NULL OR e.cleared >= lo[i]))
      SELECT b.site_id, b.bank_id, b.rack_id, b.alarm, b.severity, b.since, b.raised,
             b.raised_value, b.cleared, b.cleared_value, b.announced, NULL::text
        FROM b WHERE NOT (b.across AND b.k IN (SELECT unnest(st)))
      UNION ALL
      SELECT sites[i], banks[i]::smallint, NULL::smallint, NULL::text, NULL::text,
             NULL::timestamptz, NULL::timestamptz, NULL::float8, NULL::timestamptz,
             NULL::float8, NULL::timestamptz, coalesce(string_agg(s.k, ' '), '')
        FROM unnest(st) AS s(k)
       WHERE s.k NOT IN (SELECT b.k FROM b WHERE b.across);
  END LOOP;
END $$"""


def ddl() -> list[str]:
    """The table, its indexes (one episode per alarm, rack and start; by bank and end; the
    active ones) and the lock function."""
    t = ident(TABLE)
    cols = ",\n  ".join(f"{ident(n)} {typ}" for n, typ in (*COLUMNS, ANNOUNCED))
    return [
        f"CREATE TABLE IF NOT EXISTS {t} (\n  {cols},\n"
        "  CHECK (severity IN ('fault', 'warning')),\n"
        "  CHECK (since <= raised AND (cleared IS NULL OR cleared > raised))\n)",
        f"CREATE UNIQUE INDEX IF NOT EXISTS {ident(TABLE + '_episode')} ON {t} "
        "(site_id, bank_id, alarm, (coalesce(rack_id, 0)), since)",
        f"CREATE INDEX IF NOT EXISTS {ident(TABLE + '_bank_cleared')} ON {t} "
        "(site_id, bank_id, cleared)",
        f"CREATE INDEX IF NOT EXISTS {ident(TABLE + '_active')} ON {t} (site_id, bank_id) "
        "WHERE cleared IS NULL",
        *lock_function_ddl(),
    ]


def announced_ddl() -> list[str]:
    """An events table from before `announced`: the column, each episode's `raised` in it."""
    return [f"ALTER TABLE {ident(TABLE)} ADD COLUMN IF NOT EXISTS {ident(ANNOUNCED[0])} "
            f"{ANNOUNCED[1]}", f"UPDATE {ident(TABLE)} SET {ident(ANNOUNCED[0])} = raised"]


def lock_function_ddl() -> list[str]:
    """(Re)install the lock function: dropped first (its result type may have changed)."""
    return [f"DROP FUNCTION IF EXISTS {LOCK_FUNCTION}", LOCK_FUNCTION_SQL,
            f"COMMENT ON FUNCTION {LOCK_FUNCTION} IS '{LOCK_VERSION}'"]


_US = "(extract(epoch FROM {c}) * 1000000)::bigint"     # a timestamptz as µs since the epoch
_EPISODE = (f"site_id, bank_id, rack_id, alarm, severity, {_US.format(c='since')}, "
            f"{_US.format(c='raised')}, raised_value, {_US.format(c='cleared')}, cleared_value, "
            f"{_US.format(c='announced')}")



def lock_text(first: int) -> str:
    """The lock function's rows as one text value (its parameters $first.., e.g. 1..6): a line
    per row, `site,bank,rack,alarm,severity,since,raised,raised_value,cleared,cleared_value,
    announced,uncovered` (times in µs, empty for NULL)."""
    fields = ["l.site_id", "l.bank_id::text", "l.rack_id::text", "l.alarm", "l.severity",
              _US.format(c="l.since") + "::text", _US.format(c="l.raised") + "::text",
              "l.raised_value::text", _US.format(c="l.cleared") + "::text",
              "l.cleared_value::text", _US.format(c="l.announced") + "::text", "l.uncovered"]
    line = " || ',' || ".join(f"coalesce({f}, '')" for f in fields)
    args = ", ".join(f"${first + i}::{t}" for i, t in enumerate(
        ("int[]", "text[]", "int[]", "timestamptz[]", "timestamptz[]", "text[]")))
    return (f"SELECT coalesce(string_agg({line}, E'\\n'), '') "
            f"FROM ess_events_lock({args}) AS l")


LOCK = lock_text(1)          # the slow path's own (ess.db.pg.run_prepared)
LOCK_PARAMS = 6
# Episodes of some alarms of one bank overlapping [lo, hi] (hi may be 'infinity'): the active
# ones (a partial index) and those cleared at or after lo (a range of the bank's index).
_OF = (f"SELECT {_EPISODE} FROM {ident(TABLE)} WHERE site_id = %s AND bank_id = %s "
       "AND alarm = ANY(%s) AND since <= %s::timestamptz AND ")
OVERLAPPING = (_OF + "cleared IS NULL UNION ALL " + _OF + "cleared >= %s::timestamptz")
DELETE = (f"DELETE FROM {ident(TABLE)} WHERE site_id = %s AND bank_id = %s AND alarm = %s "
          "AND coalesce(rack_id, 0) = %s AND since = %s::timestamptz")
UPDATE = (f"UPDATE {ident(TABLE)} SET since = %s, raised = %s, raised_value = %s, "
          "cleared = %s, cleared_value = %s WHERE site_id = %s AND bank_id = %s AND alarm = %s "
          "AND coalesce(rack_id, 0) = %s AND since = %s::timestamptz")
INSERT = (f"INSERT INTO {ident(TABLE)} (" + ", ".join(n for n, _ in (*COLUMNS, ANNOUNCED))
          + ") VALUES (" + ", ".join(["%s"] * (len(COLUMNS) + 1)) + ")")
# The first poll of a bank after a time (the ledger's key serves it).
NEXT_POLL = (f"SELECT {_US.format(c='min(ts)')} FROM frames WHERE site_id = %s AND "
             "bank_id = %s AND ts > %s::timestamptz")


def rows_sql(table: str, columns: tuple[str, ...], racked: bool) -> str:
    """A table's alarm columns of one bank in [lo, hi], in poll order.

    The rack table names its racks: its key is (site, bank, rack, ts), and a scan per rack stays
    within the time range.
    """
    rack = "rack_id, " if racked else ""
    where = " AND rack_id = ANY(%s::smallint[])" if racked else ""
    order = "ts, rack_id" if racked else "ts"
    return (f"SELECT {_US.format(c='ts')}, {rack}{', '.join(ident(c) for c in columns)} "
            f"FROM {ident(table)} WHERE site_id = %s AND bank_id = %s{where} "
            f"AND ts >= %s::timestamptz AND ts <= %s::timestamptz ORDER BY {order}")


def last_known_sql(table: str, column: str, racked: bool) -> str:
    """The last poll before a time at which one column (of one rack) was not NULL."""
    rack = " AND rack_id = %s" if racked else ""
    return (f"SELECT {_US.format(c='ts')} FROM {ident(table)} WHERE site_id = %s AND "
            f"bank_id = %s{rack} AND ts < %s::timestamptz AND {ident(column)} IS NOT NULL "
            "ORDER BY ts DESC LIMIT 1")
