"""Retention test data: 40 days of rows made in SQL (one every 3 hours) for two configured sites
and, on one day, a site that is not configured; what the export would count per local day."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from ess.db.partitions import ensure_days

ZONES = {"ret-seoul": "Asia/Seoul", "ret-utc": "UTC"}
TABLES = ("bank", "rack", "pcs", "etc", "frames")
TODAY = datetime.now(UTC).date()
MISSING = TODAY - timedelta(days=36)      # ret-seoul's local day without a manifest
WRONG = TODAY - timedelta(days=33)        # ret-utc's local day whose manifest disagrees
GHOST = TODAY - timedelta(days=39)        # a UTC day with rows of a site not configured
SITES_YAML = """\
sites:
  - site_id: ret-seoul
    timezone: Asia/Seoul
    devices:
      - {host: 127.0.0.1, port: 1502, bank_id: 1}
  - site_id: ret-utc
    timezone: UTC
    devices:
      - {host: 127.0.0.1, port: 1503, bank_id: 1}
"""


def run(conn, sql: str, *args) -> list:
    cur = conn.cursor()
    cur.execute(sql, args)
    out = [list(r) for r in cur.fetchall()] if cur.description else []
    conn.commit()
    return out


def load(conn, plain: bool) -> None:
    """Hourly rows of both sites (and the ghost on one day) in every raw table; data status."""
    first = datetime.combine(TODAY - timedelta(days=40), time(0, 30), UTC)
    last = datetime.now(UTC) - timedelta(hours=1)
    if plain:
        ensure_days(conn, [TODAY - timedelta(days=d) for d in range(41)])
    hours = ("FROM generate_series(%s::timestamptz, %s::timestamptz, interval '3 hours') g "
             "CROSS JOIN (VALUES ('ret-seoul'), ('ret-utc')) s(site)")
    ghost = "FROM (SELECT %s::timestamptz + interval '3 hours' AS g, 'ret-ghost' AS site) x"
    for src, args in ((hours, (first, last)), (ghost, (datetime.combine(GHOST, time(), UTC),))):
        run(conn, f"INSERT INTO bank (ts, site_id, bank_id, bank_soc) SELECT g, site, 1, 50 {src}",
             *args)
        run(conn, f"INSERT INTO rack (ts, site_id, bank_id, rack_id, rack_soc) "
                   f"SELECT g, site, 1, r, 40 {src} CROSS JOIN generate_series(1, 8) r", *args)
        run(conn, f"INSERT INTO pcs (ts, site_id, bank_id, dc_power) SELECT g, site, 1, 2 {src}",
             *args)
        run(conn, f"INSERT INTO etc (ts, site_id, bank_id, sensor1_temperature) "
                   f"SELECT g, site, 1, 20 {src}", *args)
        run(conn, f"INSERT INTO frames (ts, site_id, bank_id, seq, map_id, map_version, "
                   f"committed) SELECT g, site, 1, extract(epoch FROM g)::bigint, 'default', 1, "
                   f"clock_timestamp() - interval '1 minute' {src}", *args)
    run(conn, "INSERT INTO data_status (day, site_id, bank_id, timezone, stored, computed) "
               "SELECT d::date, 'ret-seoul', 1, 'Asia/Seoul', 24, now() "
               "FROM generate_series(%s::date, %s::date, interval '1 day') d",
         TODAY - timedelta(days=40), TODAY)


def counts(conn) -> dict:
    """What the export wrote, per site and local day: the database's counts (a stand-in for
    the manifests until the export is wired in)."""
    out: dict = {}
    for site, tz in ZONES.items():
        for table in TABLES:
            for day, n in run(conn, f"SELECT (ts AT TIME ZONE %s)::date, count(*) FROM {table} "
                                     "WHERE site_id = %s GROUP BY 1", tz, site):
                out.setdefault((site, day), {})[table] = n
    return out


def rows_by_day(conn) -> dict:
    """(raw table, UTC day) -> rows."""
    return {(table, day): n for table in TABLES
            for day, n in run(conn, f"SELECT (ts AT TIME ZONE 'UTC')::date, count(*) "
                                     f"FROM {table} GROUP BY 1")}


def days_left(conn) -> dict:
    """UTC day -> raw rows, over every raw table."""
    out: dict = {}
    for (_, day), n in rows_by_day(conn).items():
        out[day] = out.get(day, 0) + n
    return out
