"""SQL over the frame ledger (docs/data-status.md). Every value is a parameter; no input
becomes SQL text.

Per bank, frames are ordered by poll time. A sequence gap (seq > previous + 1) is lost frames;
a sequence that goes back (seq <= previous) is a reset (a new spool). A frame is frozen when the
run of byte-identical registers (same crc) it belongs to began at least frozen_after seconds
before it.
"""

# %(site)s, %(tz)s, %(d0)s / %(d1)s (local dates, inclusive), %(interval)s,
# %(frozen)s (frozen_after seconds). One row per bank and local day with frames.
DAYS = """
WITH days AS (
  SELECT d::date AS day, (d::timestamp AT TIME ZONE %(tz)s) AS t0,
         ((d + interval '1 day')::timestamp AT TIME ZONE %(tz)s) AS t1
  FROM generate_series(%(d0)s::date, %(d1)s::date, interval '1 day') AS d
), f AS (
  SELECT bank_id, ts, seq, crc, failed, out_of_range, committed,
         lag(seq) OVER w AS pseq, lag(ts) OVER w AS pts,
         CASE WHEN crc IS NOT NULL AND crc = lag(crc) OVER w AND seq > lag(seq) OVER w
              THEN 0 ELSE 1 END AS brk
  FROM frames
  WHERE site_id = %(site)s AND ts >= (SELECT min(t0) FROM days) AND ts < (SELECT max(t1) FROM days)
  WINDOW w AS (PARTITION BY bank_id ORDER BY ts)
), r AS (
  SELECT *, sum(brk) OVER (PARTITION BY bank_id ORDER BY ts) AS run FROM f
), g AS (
  SELECT r.*, min(ts) OVER (PARTITION BY bank_id, run) AS run_start,
         days.day, days.t0, days.t1 FROM r JOIN days ON r.ts >= days.t0 AND r.ts < days.t1
)
SELECT bank_id, day, count(*)::integer AS stored,
  coalesce(sum(seq - pseq - 1) FILTER (WHERE seq > pseq + 1), 0)::integer AS lost,
  count(*) FILTER (WHERE seq <= pseq)::integer AS resets,
  count(*) FILTER (WHERE failed IS NOT NULL)::integer AS failed_polls,
  coalesce(sum(out_of_range), 0)::integer AS out_of_range,
  min(ts) AS first_poll, max(ts) AS last_poll,
  max(extract(epoch FROM committed - ts))::double precision AS max_lag_s,
  (count(*) FILTER (WHERE crc IS NOT NULL
                    AND extract(epoch FROM ts - run_start) >= %(frozen)s::float8)
   * %(interval)s::float8)::integer AS frozen_s
FROM g GROUP BY bank_id, day ORDER BY bank_id, day
"""

# Failed blocks by block and kind, per bank and day (same parameters as DAYS).
FAILED = """
WITH days AS (
  SELECT d::date AS day, (d::timestamp AT TIME ZONE %(tz)s) AS t0,
         ((d + interval '1 day')::timestamp AT TIME ZONE %(tz)s) AS t1
  FROM generate_series(%(d0)s::date, %(d1)s::date, interval '1 day') AS d
)
SELECT f.bank_id, days.day, x.what, count(*)::integer
FROM frames f JOIN days ON f.ts >= days.t0 AND f.ts < days.t1, unnest(f.failed) AS x(what)
WHERE f.site_id = %(site)s AND f.failed IS NOT NULL
  AND f.ts >= (SELECT min(t0) FROM days) AND f.ts < (SELECT max(t1) FROM days)
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""

# Lost ranges and resets (same parameters as DAYS): bank, kind, first and last missing seq
# (for a reset: the previous and the new seq), the poll times either side.
GAPS = """
WITH f AS (
  SELECT bank_id, ts, seq, lag(seq) OVER w AS pseq, lag(ts) OVER w AS pts
  FROM frames
  WHERE site_id = %(site)s
    AND ts >= (%(d0)s::date::timestamp AT TIME ZONE %(tz)s)
    AND ts < ((%(d1)s::date + 1)::timestamp AT TIME ZONE %(tz)s)
  WINDOW w AS (PARTITION BY bank_id ORDER BY ts)
)
SELECT bank_id, CASE WHEN seq > pseq THEN 'lost' ELSE 'reset' END,
       CASE WHEN seq > pseq THEN pseq + 1 ELSE pseq END,
       CASE WHEN seq > pseq THEN seq - 1 ELSE seq END, pts, ts
FROM f WHERE seq > pseq + 1 OR seq <= pseq ORDER BY bank_id, ts
"""

# The newest frame of each bank (%(site)s, %(banks)s smallint[]): poll time, lag, seq, and the
# start of its run of byte-identical registers (looked for within a day; NULL: not all read).
LAST = """
SELECT b.bank_id, l.ts, extract(epoch FROM l.committed - l.ts)::double precision, l.seq,
  CASE WHEN l.crc IS NOT NULL THEN (
    SELECT min(o.ts) FROM frames o WHERE o.site_id = %(site)s AND o.bank_id = b.bank_id
      AND o.ts <= l.ts AND o.ts > l.ts - interval '1 day' AND o.ts > coalesce((
        SELECT max(p.ts) FROM frames p WHERE p.site_id = %(site)s AND p.bank_id = b.bank_id
          AND p.ts < l.ts AND p.ts > l.ts - interval '1 day'
          AND p.crc IS DISTINCT FROM l.crc), '-infinity')) END
FROM unnest(%(banks)s::smallint[]) AS b(bank_id)
LEFT JOIN LATERAL (
  SELECT ts, committed, seq, crc FROM frames
  WHERE site_id = %(site)s AND frames.bank_id = b.bank_id ORDER BY ts DESC LIMIT 1
) AS l ON true
ORDER BY b.bank_id
"""

# Stored daily status rows for a site and days (%(site)s, %(d0)s, %(d1)s).
STORED = """
SELECT bank_id, day, expected, stored, lost, resets, failed_polls, failed, out_of_range,
       first_poll, last_poll, max_lag_s, frozen_s
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

# Sites and banks seen in the ledger lately (when no sites config is given).
SEEN = """
SELECT DISTINCT site_id, bank_id FROM frames WHERE ts > now() - interval '2 days' ORDER BY 1, 2
"""
