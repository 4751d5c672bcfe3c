"""Daily partitions in partitioned mode (plain PostgreSQL, e.g. Cloud SQL): upkeep by itself.

There is no default partition: a row whose day has no partition fails with SQLSTATE 23514
("no partition of relation ... found for row"). `with_partitions` turns that into "create the
days' partitions of every partitioned table, then run the write once more". `ess db migrate`
still creates a few days ahead, and drains a default partition left by older versions.

Creation is idempotent and safe under concurrency: `CREATE TABLE IF NOT EXISTS ... PARTITION
OF` under the migration's advisory lock, so concurrent writers (and a running migration)
serialise instead of racing on the catalog. The creating functions run as their owner
(SECURITY DEFINER), so ingest users need only EXECUTE on `ess_ensure_day_partitions(date)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, timedelta
from typing import TypeVar

from ..wire.times import to_datetime
from ..wire.transaction import reading, transaction
from . import pg

T = TypeVar("T")
LOCK_KEY = 0x455353   # "ESS": the advisory lock `ess db migrate` holds too

# A range-partitioned table on one timestamptz column, in the schema `home` (the upkeep's
# own), not itself a partition: what partitioned mode creates (data tables, the ledger, ...).
_PARENTS = """
  SELECT p.partrelid::regclass FROM pg_partitioned_table p
    JOIN pg_class c ON c.oid = p.partrelid
    JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
   WHERE p.partstrat = 'r' AND p.partnatts = 1 AND a.atttypid = 'timestamptz'::regtype
     AND c.relnamespace = home AND NOT c.relispartition
   ORDER BY c.relname"""

# The two functions ingest calls (through `ess_ensure_day_partitions`) run as their owner, the
# schema owner (SECURITY DEFINER): creating a partition needs the parent's owner, and ingest
# users only get SELECT, INSERT and EXECUTE on `ess_ensure_day_partitions(date)` (the grants,
# docs/deploy.md). Their search_path is fixed (pg_catalog first, pg_temp last) and names are
# schema-qualified, since pg_catalog is then the "current schema".
DEFINER_FUNCTIONS = ("ess_ensure_partition(regclass, date)", "ess_ensure_day_partitions(date)")

PARTITION_FUNCTIONS = [
    f"""
CREATE OR REPLACE FUNCTION ess_ensure_partition(parent regclass, day date)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
  nsp text;
  part text;
BEGIN
  SELECT n.nspname, c.relname || '_p' || to_char(day, 'YYYYMMDD') INTO nsp, part
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
  PERFORM pg_advisory_xact_lock({LOCK_KEY});
  IF to_regclass(format('%I.%I', nsp, part)) IS NOT NULL THEN
    RETURN false;
  END IF;
  EXECUTE format('CREATE TABLE IF NOT EXISTS %I.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                 nsp, part, parent, day::timestamp AT TIME ZONE 'UTC',
                 (day + 1)::timestamp AT TIME ZONE 'UTC');
  RETURN true;
END $$""".strip(),
    f"""
CREATE OR REPLACE FUNCTION ess_ensure_day_partitions(day date)
RETURNS int LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
  home oid := (SELECT pronamespace FROM pg_proc
                WHERE oid = 'ess_ensure_day_partitions(date)'::regprocedure);
  parent regclass;
  made int := 0;
BEGIN
  FOR parent IN {_PARENTS.strip()}
  LOOP
    IF ess_ensure_partition(parent, day) THEN
      made := made + 1;
    END IF;
  END LOOP;
  RETURN made;
END $$""".strip(),
    # The schema the migration runs in (current_schema()) is known only when it runs.
    "DO $$ BEGIN\n" + "".join(
        f"  EXECUTE format('ALTER FUNCTION {fn} SET search_path = pg_catalog, %I, pg_temp',\n"
        "                 current_schema());\n" for fn in DEFINER_FUNCTIONS) + "END $$",
    f"REVOKE EXECUTE ON FUNCTION {', '.join(DEFINER_FUNCTIONS)} FROM PUBLIC",
    """
CREATE OR REPLACE FUNCTION ess_ensure_partitions(parent regclass, days_ahead int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  d date := (now() AT TIME ZONE 'UTC')::date - 1;
  made int := 0;
BEGIN
  WHILE d <= (now() AT TIME ZONE 'UTC')::date + days_ahead LOOP
    IF ess_ensure_partition(parent, d) THEN
      made := made + 1;
    END IF;
    d := d + 1;
  END LOOP;
  RETURN made;
END $$""".strip(),
    f"""
CREATE OR REPLACE FUNCTION ess_drain_default_partition(parent regclass)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  dflt regclass;
  key text;
  cols text;
  day date;
  moved bigint;
BEGIN
  SELECT i.inhrelid::regclass INTO dflt FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
   WHERE i.inhparent = parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
  IF dflt IS NULL THEN
    RETURN 0;
  END IF;
  PERFORM pg_advisory_xact_lock({LOCK_KEY});
  SELECT quote_ident(a.attname) INTO key FROM pg_partitioned_table p
    JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
   WHERE p.partrelid = parent;
  SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols FROM pg_attribute
   WHERE attrelid = parent AND attnum > 0 AND NOT attisdropped;
  EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', parent, dflt);
  FOR day IN EXECUTE format('SELECT DISTINCT (%s AT TIME ZONE ''UTC'')::date FROM %s',
                            key, dflt) LOOP
    PERFORM ess_ensure_partition(parent, day);
  END LOOP;
  EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT DO NOTHING',
                 parent, cols, cols, dflt);
  GET DIAGNOSTICS moved = ROW_COUNT;
  EXECUTE format('DROP TABLE %s', dflt);
  RETURN moved;
END $$""".strip(),
]

# Is the upkeep installed (by `ess db migrate` in partitioned mode)? Is it the current one
# (SECURITY DEFINER with a fixed search_path; older versions ran as the caller)?
INSTALLED_SQL = "SELECT to_regprocedure('ess_ensure_day_partitions(date)') IS NOT NULL"
CURRENT_SQL = ("SELECT coalesce(bool_and(prosecdef AND proconfig IS NOT NULL), false) "
               "FROM pg_proc WHERE oid IN (to_regprocedure('ess_ensure_partition(regclass, date)'),"
               " to_regprocedure('ess_ensure_day_partitions(date)'))")
DEFAULTS_SQL = ("SELECT i.inhparent::regclass::text FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' "
                "AND c.relnamespace = current_schema()::regnamespace ORDER BY 1")


def is_missing_partition(exc: BaseException) -> bool:
    """True for PostgreSQL's 'no partition of relation ... found for row' (SQLSTATE 23514)."""
    return pg.sqlstate(exc) == "23514" and "no partition of relation" in pg.server_message(exc)


def days_of(poll_us: Iterable[int]) -> list[date]:
    """The UTC days of these instants (microseconds since 1970), sorted, once each."""
    return sorted({to_datetime(us).date() for us in poll_us})


def ensure_days(conn, days: Iterable[date]) -> int:
    """Create `days`' partitions of every partitioned table; return how many were made.

    Commits (or, in autocommit mode, each call is its own transaction).
    """
    made = 0
    with transaction(conn) as cur:
        for day in days:
            cur.execute("SELECT ess_ensure_day_partitions(%s::date)", (day.isoformat(),))
            made += cur.fetchone()[0]
    return made


def ensure_ahead(conn, days_ahead: int) -> int:
    """Create partitions from yesterday to `days_ahead` days ahead (UTC); 0 without upkeep
    installed (hypertable mode, or before the first migration)."""
    with reading(conn) as cur:
        cur.execute(INSTALLED_SQL)
        installed = cur.fetchone()[0]
        cur.execute("SELECT (now() AT TIME ZONE 'UTC')::date")
        today = cur.fetchone()[0]
    if not installed:
        return 0
    return ensure_days(conn, [today + timedelta(days=d) for d in range(-1, days_ahead + 1)])


def with_partitions(conn, write: Callable[[], T], poll_us: Iterable[int]) -> T:
    """Run `write()`; when a row's day has no partition, create the partitions of the days in
    `poll_us` (every partitioned table) and run `write()` once more."""
    try:
        return write()
    except pg.DatabaseError as exc:
        if not is_missing_partition(exc):
            raise
    ensure_days(conn, days_of(poll_us))
    return write()
