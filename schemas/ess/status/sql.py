"""SQL over the frame ledger (docs/data-status.md). Every value is a parameter; no input
becomes SQL text. Every scan of `frames` is bounded by `ts` parameters the code computes (aware
datetimes), so the planner prunes the ledger's partitions or chunks to those days: an unbounded
scan, or one bounded by `now()` or a value known only at run time, opens and locks all of them.

Per bank, frames are ordered by poll time. A sequence gap (seq > previous + 1) is lost frames;
a sequence that goes back (seq <= previous) is a reset (a new spool). A frame is frozen when the
run of byte-identical registers (same crc) it belongs to began at least frozen_after seconds
before it.
"""

# %(site)s, %(tz)s, %(start)s / %(end)s (UTC bounds of the local days d0..d1), %(interval)s,
# %(frozen)s (frozen_after seconds), %(back)s (the window's start minus frozen_after),
# %(seed_from)s (how far back a bank's last row before the window is looked for). One row
# per bank and local day with frames, in one pass (every window shares the ledger's key order):
# the day's counts, the newest commit time, and its lost ranges and resets as [lost (1) or
# reset (0), first, last, µs before, µs after] (NULL when none). The rows from %(back)s on
# and each bank's last row before it (its seed, looked up for the bank's first row only) are
# what the window's first frames are compared with, so a gap or a run of identical registers
# across midnight counts as in one longer window; only rows from d0 on are counted. A frame's
# run starts at the newest frame at or before it that broke the run (the seed's time when the
# run goes on from the seed: it is older than frozen_after anyway).
DAYS = """
WITH f AS (
  SELECT bank_id, ts, seq, crc, failed, out_of_range, committed, lag(ts) OVER w AS pts0,
         lag(seq) OVER w AS pseq0, lag(crc) OVER w AS pcrc0
  FROM frames
  WHERE site_id = %(site)s AND ts >= %(back)s AND ts < %(end)s
  WINDOW w AS (PARTITION BY bank_id ORDER BY ts)
), s AS (
  SELECT f.*, CASE WHEN pts0 IS NULL THEN (
    SELECT p FROM frames p WHERE p.site_id = %(site)s AND p.bank_id = f.bank_id
      AND p.ts < %(back)s AND p.ts >= %(seed_from)s ORDER BY p.ts DESC LIMIT 1) END AS seed
  FROM f
), t AS (
  SELECT bank_id, ts, seq, crc, failed, out_of_range, committed, pts0 IS NULL AS head,
         coalesce(pts0, (seed).ts) AS pts, coalesce(pseq0, (seed).seq) AS pseq,
         CASE WHEN pts0 IS NULL THEN (seed).crc ELSE pcrc0 END AS pcrc
  FROM s
), g AS (
  SELECT t.*, max(CASE WHEN crc IS NOT NULL AND crc = pcrc AND seq > pseq
                       THEN CASE WHEN head THEN pts END ELSE ts END)
         OVER (PARTITION BY bank_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS run_start
  FROM t
)
SELECT bank_id, (ts AT TIME ZONE %(tz)s)::date AS day, count(*)::integer AS stored,
  coalesce(sum(seq - pseq - 1) FILTER (WHERE seq > pseq + 1), 0)::integer AS lost,
  count(*) FILTER (WHERE seq <= pseq)::integer AS resets,
  count(failed)::integer AS failed_polls,
  coalesce(sum(out_of_range), 0)::integer AS out_of_range,
  min(ts) AS first_poll, max(ts) AS last_poll,
  extract(epoch FROM max(committed - ts))::double precision AS max_lag_s,
  (count(*) FILTER (WHERE crc IS NOT NULL
                    AND run_start <= ts - %(frozen)s::float8 * interval '1 second')
   * %(interval)s::float8)::integer AS frozen_s,
  array_agg(ARRAY[(seq > pseq)::integer,
                  CASE WHEN seq > pseq THEN pseq + 1 ELSE pseq END,
                  CASE WHEN seq > pseq THEN seq - 1 ELSE seq END,
                  (extract(epoch FROM pts) * 1000000)::bigint,
                  (extract(epoch FROM ts) * 1000000)::bigint] ORDER BY ts)
    FILTER (WHERE seq > pseq + 1 OR seq <= pseq) AS gaps,
  max(committed) AS last_committed
FROM g WHERE ts >= %(start)s
GROUP BY 1, 2 ORDER BY 1, 2
"""

# Failed blocks by block and kind, per bank and day (same parameters as DAYS).
FAILED = """
SELECT bank_id, (ts AT TIME ZONE %(tz)s)::date, x.what, count(*)::integer
FROM frames, unnest(failed) AS x(what)
WHERE site_id = %(site)s AND failed IS NOT NULL AND ts >= %(start)s AND ts < %(end)s
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""

# The newest frame of each bank (%(site)s, %(banks)s smallint[]) polled since %(since)s: poll
# time, lag, seq and crc (NULL unless every block read); no row: none in that window.
LAST = """
SELECT b.bank_id, l.ts, extract(epoch FROM l.committed - l.ts)::double precision, l.seq, l.crc
FROM unnest(%(banks)s::smallint[]) AS b(bank_id)
JOIN LATERAL (
  SELECT ts, committed, seq, crc FROM frames
  WHERE site_id = %(site)s AND frames.bank_id = b.bank_id AND ts >= %(since)s
  ORDER BY ts DESC LIMIT 1
) AS l ON true
ORDER BY b.bank_id
"""

# The last poll of each bank (%(banks)s) as the export saved it, for banks not seen lately.
LAST_SAVED = """
SELECT bank_id, max(last_poll) FROM data_status
WHERE site_id = %(site)s AND bank_id = ANY(%(banks)s::smallint[]) AND last_poll IS NOT NULL
GROUP BY bank_id
"""

# Where the run of byte-identical registers that a bank's newest frame (%(ts)s, %(crc)s) belongs
# to began, looked for within the day before it (%(day_before)s): the oldest frame after the
# newest one whose crc differs.
RUN_START = """
SELECT min(o.ts) FROM frames o
WHERE o.site_id = %(site)s AND o.bank_id = %(bank)s AND o.ts <= %(ts)s AND o.ts > %(day_before)s
  AND o.ts > coalesce((
    SELECT max(p.ts) FROM frames p WHERE p.site_id = %(site)s AND p.bank_id = %(bank)s
      AND p.ts < %(ts)s AND p.ts > %(day_before)s AND p.crc IS DISTINCT FROM %(crc)s),
    '-infinity')
"""

# Stored daily status rows for a site and days (%(site)s, %(d0)s, %(d1)s), and when each
# was computed.
STORED = """
SELECT bank_id, day, expected, stored, lost, resets, failed_polls, failed, out_of_range,
       first_poll, last_poll, max_lag_s, frozen_s, computed
FROM data_status WHERE site_id = %(site)s AND day BETWEEN %(d0)s::date AND %(d1)s::date
ORDER BY bank_id, day
"""

UPSERT = """
INSERT INTO data_status (day, site_id, bank_id, timezone, expected, stored, completeness, lost,
  resets, missed, failed_polls, failed, out_of_range, first_poll, last_poll, max_lag_s, frozen_s,
  computed)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, now())
ON CONFLICT (site_id, bank_id, day) DO UPDATE SET timezone = EXCLUDED.timezone,
  expected = EXCLUDED.expected, stored = EXCLUDED.stored, completeness = EXCLUDED.completeness,
  lost = EXCLUDED.lost, resets = EXCLUDED.resets, missed = EXCLUDED.missed,
  failed_polls = EXCLUDED.failed_polls, failed = EXCLUDED.failed,
  out_of_range = EXCLUDED.out_of_range, first_poll = EXCLUDED.first_poll,
  last_poll = EXCLUDED.last_poll, max_lag_s = EXCLUDED.max_lag_s, frozen_s = EXCLUDED.frozen_s,
  computed = now()
"""

# Sites and banks seen in the ledger since %(since)s (when no sites config is given).
SEEN = """
SELECT DISTINCT site_id, bank_id FROM frames WHERE ts > %(since)s ORDER BY 1, 2
"""
