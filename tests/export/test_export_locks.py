"""Three years of daily partitions (plain PostgreSQL) and chunks (TimescaleDB) cost a site-day
export nothing (issue 21, item 4): every query of a day range prunes to its days, so the
export's transaction holds fewer than 100 locks, and so do the data status and the first-day
lookup. Before, the COPY filtered on `current_setting()` (no plan-time pruning) and held a lock
on every partition and index: thousands, and Cloud SQL's lock table is a few thousand."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.writer import write_frames
from ess.regmap import load_map
from ess.sites import load_sites
from ess.status import report
from ess_functions.export.dates import check_first_days
from ess_functions.export.run import export_site_day
from ess_functions.objstore.local import DirStore
from export_helpers import frame

M = load_map("default")
DAYS = 3 * 365 + 1
MAX_LOCKS = 100
SITES = "sites:\n  - site_id: lock-a\n    timezone: Asia/Seoul\n    devices:\n" \
        "      - {host: 127.0.0.1, port: 1502, bank_id: 1}\n" \
        "      - {host: 127.0.0.1, port: 1503, bank_id: 2}\n"
# Three years of partitions (or chunks) for the ledger, which the data status and the first-day
# check read, and for `bank`, whose COPY is built as every table's is: enough for thousands of
# locks without pruning (2 per partition: it and its primary key), in a minute of setup.
TABLES = ("frames", "bank")
TODAY = datetime.now(UTC).date()
FIRST = TODAY - timedelta(days=DAYS)


def _partitions(conn) -> None:
    """A partition of every table for each of DAYS days up to today (named as the upkeep names
    them, so it finds them), a hundred days per transaction (the lock table is shared)."""
    cur = conn.cursor()
    for k in range(0, DAYS + 1, 100):
        lo, hi = FIRST + timedelta(days=k), min(TODAY, FIRST + timedelta(days=k + 99))
        for t in TABLES:
            cur.execute(f"""DO $$ DECLARE d date; BEGIN
              FOR d IN SELECT generate_series(DATE '{lo}', DATE '{hi}', interval '1 day')::date
              LOOP
                EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF {t} FOR VALUES FROM
                  (%L) TO (%L)', '{t}_p' || to_char(d, 'YYYYMMDD'), d::timestamp AT TIME ZONE
                  'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
              END LOOP; END $$""")
        conn.commit()


def _chunks(conn) -> None:
    """A row of another site at noon of each of DAYS days in the ledger and `bank`: a chunk a
    day, a hundred days per transaction."""
    cur = conn.cursor()
    for k in range(0, DAYS + 1, 100):
        lo, hi = FIRST + timedelta(days=k), min(TODAY, FIRST + timedelta(days=k + 99))
        days = f"generate_series(DATE '{lo}', DATE '{hi}', interval '1 day') AS g(d)"
        noon = "g.d + interval '12 hours'"
        cur.execute(f"INSERT INTO frames (ts, site_id, bank_id, seq, map_id, map_version, "
                    f"poll_us, committed) SELECT {noon}, 'filler', 1, 1, 'default', 1, 1, now() "
                    f"FROM {days}")
        cur.execute(f"INSERT INTO bank (ts, site_id, bank_id) SELECT {noon}, 'filler', 1 "
                    f"FROM {days}")
        conn.commit()


def _build(dsn: str, mode: str) -> None:
    """DAYS days of partitions or chunks, and a day of frames of site lock-a (three days ago)."""
    conn = connect_dsn(dsn, read_timeout=900)
    try:
        migrate(conn, [M], mode=mode)
        (_partitions if mode == "partitioned" else _chunks)(conn)
        start = datetime.combine(TODAY - timedelta(days=3), datetime.min.time(), UTC) \
            - timedelta(hours=9)          # 00:00 in Seoul
        frames = [frame("lock-a", b, start + timedelta(minutes=7 * k), k, M)
                  for b in (1, 2) for k in range(1, 200)]
        write_frames(conn, frames, {M.key: M})
    finally:
        conn.close()


@pytest.fixture(scope="module")
def long_dbs(pg_cluster, tmp_path_factory):
    """Both databases, built at once (two backends work in parallel)."""
    names = {m: f"locks_{m}_{uuid.uuid4().hex[:8]}" for m in ("partitioned", "timescale")}
    # (the other tables get the export day's partitions or chunks when its frames are written)
    dsns = {m: pg_cluster.create_database(n, timescale=m == "timescale")
            for m, n in names.items()}
    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(_build, dsns[m], m) for m in dsns]:
            f.result()
    path = tmp_path_factory.mktemp("locks") / "sites.yaml"
    path.write_text(SITES)
    yield dsns, load_sites(str(path))
    # Not dropped: dropping 5,000 relations takes half a minute, and the session's cluster is
    # discarded at its end anyway.


@pytest.fixture(params=["partitioned", "timescale"])
def long_db(request, long_dbs):
    """(DSN, sites, the export day) of one mode."""
    dsns, sites = long_dbs
    return dsns[request.param], sites, TODAY - timedelta(days=3)


def _locks(conn, pid: int) -> int:
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM pg_locks WHERE pid = %s", (pid,))
    (n,) = cur.fetchone()
    conn.rollback()
    return n


def _pid(conn) -> int:
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    (pid,) = cur.fetchone()
    conn.rollback()
    return pid


def test_a_site_day_export_takes_fewer_than_100_locks(long_db, tmp_path):
    dsn, sites, day = long_db
    conn, watch = connect_dsn(dsn, read_timeout=900), connect_dsn(dsn)
    pid, held = _pid(conn), []
    try:
        results, _ = export_site_day(conn, sites.site("lock-a"), day, DirStore(tmp_path),
                                     on_file=lambda r: held.append(_locks(watch, pid)))
    finally:
        conn.close()
        watch.close()
    assert {r.type for r in results} == {"bank", "rack", "pcs", "etc", "events"}
    assert sum(r.rows for r in results if r.type == "bank") > 100, "the day's rows exported"
    assert held and max(held) < MAX_LOCKS, held


class Held:
    """A connection whose commits and rollbacks wait: every lock a query took stays held, so
    the locks of code that ends its own transactions can be counted."""

    autocommit = False

    def __init__(self, conn):
        self.conn = conn

    def cursor(self):
        return self.conn.cursor()

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass


@pytest.mark.parametrize("what", ["status", "last_seen", "first_day"])
def test_day_range_queries_prune(long_db, what):
    dsn, sites, day = long_db
    site = sites.site("lock-a")
    now = datetime.now(UTC)
    runs = {
        "status": lambda c: report.compute(c, site.site_id, site.timezone, [1, 2], day, day,
                                           now=now),
        "last_seen": lambda c: report.last_seen(c, site.site_id, [1, 2], now),
        "first_day": lambda c: check_first_days(c, sites, [(site, day)], now=now),
    }
    conn = connect_dsn(dsn, read_timeout=900)
    try:
        runs[what](Held(conn))
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()")
        (n,) = cur.fetchone()
    finally:
        conn.rollback()
        conn.close()
    assert n < MAX_LOCKS, (what, n)
