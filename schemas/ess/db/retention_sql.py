"""The database side of retention: list raw slices, and retire one time range atomically.

A *slice* is one daily partition (plain PostgreSQL) or one chunk (TimescaleDB) of a raw table
(the data tables and the ledger; never `data_status`, rollups or events). `ess_retire_raw`
drops the slices of [lo, hi) only when, for every site and site-local day with rows there, the
rows in the database plus those dropped before equal what the export wrote (`expected`), the
rollups cover every frame there, and no row belongs to a site without a time zone. It checks
and drops under one lock, so no row can arrive between the count and the drop. It runs as its
owner (SECURITY DEFINER: dropping needs ownership), refuses ranges younger than
MIN_RAW_DAYS, and records what it dropped in `ess_retired` (which the export reads, so a
retired day is never rewritten from the rows left).
"""

from __future__ import annotations

from .quote import ident
from .rollup_schema import ROLLUP_STATE
from .schema import KEYS, LEDGER, TableSpec

MIN_RAW_DAYS = 3                  # raw rows younger than this are never dropped
RETIRE_VERSION = "ess retention 1"  # the COMMENT that says the installed function is current
RAW_TABLES = (*KEYS, LEDGER.name)   # what retention may drop, fixed in the function's text
# Dropping: tries of at most DROP_TRY_MS waiting for the parent's lock (ingest waits that long
# at most), DROP_PAUSE_S apart; then the range is left for the next run.
DROP_TRY_MS, DROP_TRIES, DROP_PAUSE_S = 200, 40, 0.25

# Per site, local day and raw table: rows dropped by retention, and the export's count then.
RETIRED = TableSpec("ess_retired", (("day", "date"), ("site_id", "text"), ("tbl", "text")), (
    ("dropped", "bigint"), ("exported", "bigint"), ("updated", "timestamptz")))

SLICES_FN = """
CREATE OR REPLACE FUNCTION ess_raw_slices(lo timestamptz, hi timestamptz)
RETURNS TABLE (tbl text, rel regclass, range_start timestamptz, range_end timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
  t text;
  home text := (SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE p.oid = 'ess_raw_slices(timestamptz, timestamptz)'::regprocedure);
BEGIN
  FOREACH t IN ARRAY %(tables)s LOOP
    IF to_regclass(t) IS NULL THEN
      CONTINUE;
    ELSIF EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(t)) THEN
      RETURN QUERY SELECT * FROM (
        SELECT t, c.oid::regclass,
               substring(pg_get_expr(c.relpartbound, c.oid) FROM $r$FROM \\('([^']+)'\\)$r$)
                 ::timestamptz AS s,
               substring(pg_get_expr(c.relpartbound, c.oid) FROM $r$TO \\('([^']+)'\\)$r$)
                 ::timestamptz AS e
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = to_regclass(t)
           AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT') AS p
       WHERE p.s >= lo AND p.e <= hi;
    ELSIF to_regclass('timescaledb_information.chunks') IS NOT NULL THEN
      RETURN QUERY EXECUTE
        'SELECT $1, format(''%%I.%%I'', chunk_schema, chunk_name)::regclass, range_start, '
        'range_end FROM timescaledb_information.chunks WHERE hypertable_name = $1 '
        'AND hypertable_schema = $4 AND range_start >= $2 AND range_end <= $3'
        USING t, lo, hi, home;
    END IF;
  END LOOP;
END $$""".strip()

RETIRE_FN = """
CREATE OR REPLACE FUNCTION ess_retire_raw(lo timestamptz, hi timestamptz, zones jsonb,
                                          expected jsonb)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
  s record;
  bad jsonb;
  behind boolean;
  total bigint;
BEGIN
  IF hi <= lo OR hi > now() - interval '%(min_days)s days' THEN
    RAISE EXCEPTION 'ess_retire_raw: [%%, %%) is not older than %(min_days)s days', lo, hi
      USING ERRCODE = '22023';
  END IF;
  CREATE TEMP TABLE IF NOT EXISTS pg_temp.ess_slices (tbl text, rel regclass) ON COMMIT DROP;
  CREATE TEMP TABLE IF NOT EXISTS pg_temp.ess_counts (tbl text, site_id text, day date,
    present bigint, in_range bigint) ON COMMIT DROP;
  TRUNCATE pg_temp.ess_slices, pg_temp.ess_counts;
  INSERT INTO pg_temp.ess_slices SELECT x.tbl, x.rel FROM ess_raw_slices(lo, hi) x;
  IF NOT FOUND THEN
    RETURN jsonb_build_object('dropped', false, 'reason', 'no slices');
  END IF;
  FOR s IN SELECT * FROM pg_temp.ess_slices LOOP    -- no insert into them from here to commit
    EXECUTE format('LOCK TABLE %%s IN SHARE MODE', s.rel);
  END LOOP;
  FOR s IN SELECT DISTINCT tbl FROM pg_temp.ess_slices LOOP
    EXECUTE format(
      'INSERT INTO pg_temp.ess_counts SELECT %%L, r.site_id, (r.ts AT TIME ZONE z.tz)::date, '
      'count(*), count(*) FILTER (WHERE r.ts >= $1 AND r.ts < $2) FROM %%I r '
      'LEFT JOIN jsonb_each_text($3) AS z(site_id, tz) ON z.site_id = r.site_id '
      'WHERE r.ts >= $1 - interval ''2 days'' AND r.ts < $2 + interval ''2 days'' '
      'GROUP BY 2, 3', s.tbl, s.tbl) USING lo, hi, zones;
  END LOOP;
  DELETE FROM pg_temp.ess_counts WHERE in_range = 0;
  SELECT jsonb_agg(jsonb_build_object('site', c.site_id, 'day', c.day, 'table', c.tbl,
           'present', c.present, 'dropped', coalesce(d.dropped, 0),
           'exported', expected -> c.site_id -> to_char(c.day, 'YYYY-MM-DD') -> c.tbl)
           ORDER BY c.site_id, c.day, c.tbl) INTO bad
    FROM pg_temp.ess_counts c LEFT JOIN %(retired)s d
      ON d.site_id = c.site_id AND d.day = c.day AND d.tbl = c.tbl
   WHERE c.day IS NULL
      OR (expected -> c.site_id -> to_char(c.day, 'YYYY-MM-DD') -> c.tbl) IS NULL
      OR c.present + coalesce(d.dropped, 0)
         <> (expected -> c.site_id -> to_char(c.day, 'YYYY-MM-DD') ->> c.tbl)::bigint;
  IF bad IS NOT NULL THEN
    RETURN jsonb_build_object('dropped', false, 'reason', 'not exported', 'mismatch', bad);
  END IF;
  EXECUTE format('SELECT EXISTS (SELECT 1 FROM %%I f WHERE f.ts >= $1 AND f.ts < $2 AND '
                 'f.committed >= coalesce((SELECT watermark FROM %(state)s '
                 'WHERE name = ''rollup''), ''-infinity''))', %(ledger)s)
    INTO behind USING lo, hi;
  IF behind THEN
    RETURN jsonb_build_object('dropped', false, 'reason', 'rollups behind');
  END IF;
  INSERT INTO %(retired)s (day, site_id, tbl, dropped, exported, updated)
  SELECT c.day, c.site_id, c.tbl, c.in_range,
         (expected -> c.site_id -> to_char(c.day, 'YYYY-MM-DD') ->> c.tbl)::bigint, now()
    FROM pg_temp.ess_counts c
  ON CONFLICT (site_id, tbl, day) DO UPDATE
    SET dropped = %(retired)s.dropped + EXCLUDED.dropped, exported = EXCLUDED.exported,
        updated = EXCLUDED.updated;
  SELECT coalesce(sum(in_range), 0) INTO total FROM pg_temp.ess_counts;
  -- Dropping a partition takes its parent's ACCESS EXCLUSIVE lock (a chunk: not), which waits
  -- for statements in flight and makes new ones wait behind it: short tries, a pause between.
  PERFORM set_config('lock_timeout', '%(try_ms)sms', true);
  FOR attempt IN 1..%(tries)s LOOP
    BEGIN
      FOR s IN SELECT * FROM pg_temp.ess_slices LOOP
        IF to_regclass('_timescaledb_catalog.chunk') IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_partitioned_table p
                            ON p.partrelid = i.inhparent WHERE i.inhrelid = s.rel) THEN
          PERFORM drop_chunks(s.tbl::regclass, older_than => hi, newer_than => lo);
        ELSE
          EXECUTE format('DROP TABLE %%s', s.rel);
        END IF;
      END LOOP;
      RETURN jsonb_build_object('dropped', true, 'slices',
                                (SELECT count(*) FROM pg_temp.ess_slices), 'rows', total,
                                'tries', attempt);
    EXCEPTION WHEN lock_not_available THEN
      PERFORM pg_sleep(%(pause_s)s);
    END;
  END LOOP;
  RAISE EXCEPTION 'ess_retire_raw: [%%, %%) stayed in use; retry later', lo, hi
    USING ERRCODE = '55P03';
END $$""".strip()


def _array(names) -> str:
    return "ARRAY[" + ", ".join(f"'{ident(n)[1:-1]}'" for n in names) + "]"


def retention_functions() -> list[str]:
    """The statements that install (or replace) the retention functions."""
    fill = {"tables": _array(RAW_TABLES), "min_days": MIN_RAW_DAYS, "try_ms": DROP_TRY_MS,
            "tries": DROP_TRIES, "pause_s": DROP_PAUSE_S,
            "retired": ident(RETIRED.name), "state": ident(ROLLUP_STATE.name),
            "ledger": f"'{ident(LEDGER.name)[1:-1]}'"}
    retire = "ess_retire_raw(timestamptz, timestamptz, jsonb, jsonb)"
    return [SLICES_FN % fill, RETIRE_FN % fill,
            "DO $$ BEGIN EXECUTE format('ALTER FUNCTION " + retire + " SET search_path = "
            "pg_catalog, %I, pg_temp', current_schema()); END $$",
            f"ALTER FUNCTION {retire} SET lock_timeout = '10s'",
            f"REVOKE EXECUTE ON FUNCTION {retire} FROM PUBLIC",
            f"COMMENT ON FUNCTION {retire} IS '{RETIRE_VERSION}'"]


# Is the current retention function installed?
RETIRE_CURRENT_SQL = ("SELECT coalesce(obj_description(to_regprocedure("
                      "'ess_retire_raw(timestamptz, timestamptz, jsonb, jsonb)'), 'pg_proc') "
                      f"= '{RETIRE_VERSION}', false)")
