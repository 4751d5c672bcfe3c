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

# A batch's first step, in one round trip: take the banks' locks (keys in the order given),
# then read, in a snapshot taken after the locks were granted (each query of a VOLATILE
# function takes a fresh one), the episodes overlapping each bank's [a, b]: `windows` holds one
# line `site,bank,a,b` per bank (a site id holds no comma or newline: the writer refuses one).
# Floats read back as their shortest decimal (what the decoder computed), whatever the server's
# default.
LOCK_FUNCTION = "ess_events_lock(integer[],text)"
LOCK_FUNCTION_SQL = f"""CREATE OR REPLACE FUNCTION ess_events_lock(keys int[], windows text)
RETURNS SETOF {ident(TABLE)} LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM set_config('extra_float_digits', '1', true);
  PERFORM pg_advisory_xact_lock({LOCK_NAMESPACE}, k) FROM unnest(keys) AS k;
  RETURN QUERY SELECT e.* FROM {ident(TABLE)} e
    JOIN (SELECT split_part(l, ',', 1) AS site, split_part(l, ',', 2)::smallint AS bank,
                 split_part(l, ',', 3)::timestamptz AS a, split_part(l, ',', 4)::timestamptz AS b
            FROM regexp_split_to_table(windows, E'\\n') AS l) w
      ON e.site_id = w.site AND e.bank_id = w.bank AND e.since <= w.b
     AND (e.cleared IS NULL OR e.cleared >= w.a);
END $$"""


def ddl() -> list[str]:
    """The table, its indexes (one episode per alarm, rack and start; by bank and end; the
    active ones) and the lock function."""
    t = ident(TABLE)
    cols = ",\n  ".join(f"{ident(n)} {typ}" for n, typ in COLUMNS)
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
        LOCK_FUNCTION_SQL,
    ]


_US = "(extract(epoch FROM {c}) * 1000000)::bigint"     # a timestamptz as µs since the epoch
_EPISODE = (f"site_id, bank_id, rack_id, alarm, severity, {_US.format(c='since')}, "
            f"{_US.format(c='raised')}, raised_value, {_US.format(c='cleared')}, cleared_value")

LOCK = f"SELECT {_EPISODE} FROM ess_events_lock($1::int[], $2::text)"   # run_prepared
# Episodes of one bank overlapping [lo, hi] (hi may be 'infinity').
OVERLAPPING = (f"SELECT {_EPISODE} FROM {ident(TABLE)} WHERE site_id = %s AND bank_id = %s "
               "AND since <= %s::timestamptz AND (cleared IS NULL OR cleared >= %s::timestamptz)")
DELETE = (f"DELETE FROM {ident(TABLE)} WHERE site_id = %s AND bank_id = %s AND alarm = %s "
          "AND coalesce(rack_id, 0) = %s AND since = %s::timestamptz")
UPDATE = (f"UPDATE {ident(TABLE)} SET since = %s, raised = %s, raised_value = %s, "
          "cleared = %s, cleared_value = %s WHERE site_id = %s AND bank_id = %s AND alarm = %s "
          "AND coalesce(rack_id, 0) = %s AND since = %s::timestamptz")
INSERT = (f"INSERT INTO {ident(TABLE)} (" + ", ".join(n for n, _ in COLUMNS)
          + ") VALUES (" + ", ".join(["%s"] * len(COLUMNS)) + ")")
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
