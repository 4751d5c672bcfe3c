"""Rollups for `make bench`: what keeping them costs ingest, and what they save a long query.

- Maintenance as a share of ingest, at the end of a day: a database holding 23 hours of 10
  banks (made in SQL: the day's partitions or chunks are full, as at 23:00) and a copy of it
  without the rollups' commit-time index. Rounds of 5 minutes of the 10 banks' frames, written
  as ingest writes them (one 10-frame statement per site and second) into both, alternating which
  goes first; after each round the rollup job runs on the first (its schedule: every 5 minutes).
  Ours: frames/s with the index and the job; baseline: frames/s without either; the share of
  maintenance is 1 - ours / baseline.
- A 30-day query of one bank: its 1-minute series (mean, min, max of SOC, mean power) from
  `bank_1m` against the same series computed from the raw `bank` rows (2.6 million), run in the
  database (EXPLAIN ANALYZE's execution time: the rows are made, not sent), best of 3.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

ROUNDS = 3
SECONDS_PER_ROUND = 300
BANKS = 10
DAYS = 30
PRELOAD_HOURS = 23


def _db(cluster, name: str, regmap) -> object:
    from ess.db.connect import connect_dsn
    from ess.db.migrate import migrate

    dsn = cluster.create_database(name, timescale=cluster.timescale)
    conn = connect_dsn(dsn, read_timeout=3600)
    migrate(conn, [regmap])
    return conn


def _preload(conn, day: datetime) -> None:
    """PRELOAD_HOURS of BANKS banks in every raw table (keys and a value), the rollup watermark
    after them (their rollups are not what is measured)."""
    from ess.db.migrate import mode_of
    from ess.db.partitions import ensure_days

    if mode_of(conn) == "partitioned":
        ensure_days(conn, [day.date()])
    series = ("FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 second', "
              f"interval '1 second') g CROSS JOIN generate_series(1, {BANKS}) b")
    span = (day, day + timedelta(hours=PRELOAD_HOURS))
    cur = conn.cursor()
    for sql in ("INSERT INTO bank (ts, site_id, bank_id, bank_soc) SELECT g, 'bench-site', b, 50",
                "INSERT INTO rack (ts, site_id, bank_id, rack_id, rack_soc) "
                "SELECT g, 'bench-site', b, r, 50",
                "INSERT INTO pcs (ts, site_id, bank_id, dc_power) SELECT g, 'bench-site', b, 1",
                "INSERT INTO etc (ts, site_id, bank_id, sensor1_temperature) "
                "SELECT g, 'bench-site', b, 20",
                "INSERT INTO frames (ts, site_id, bank_id, seq, committed) "
                "SELECT g, 'bench-site', b, 1, now()"):
        racks = " CROSS JOIN generate_series(1, 8) r" if "rack_id" in sql else ""
        cur.execute(f"{sql} {series}{racks}", span)
        conn.commit()
    cur.execute("ANALYZE")
    cur.execute("INSERT INTO ess_rollup_state (name, watermark, updated) "
                "VALUES ('rollup', clock_timestamp(), now())")
    conn.commit()


def _statements(regmap, first_second: int, t0: int) -> list[list]:
    """One 10-frame batch per second: the site's banks, as the collector sends them."""
    from ess.codec import BlockData, Frame
    from ess_collector.simulator.model import registers_at

    out = []
    for s in range(first_second, first_second + SECONDS_PER_ROUND):
        t = t0 + s
        out.append([Frame("bench-site", b, s, t * 1_000_000, t * 1_000_000 + 40_000,
                          regmap.map_id, regmap.version,
                          {n: BlockData(registers=Frame.registers_to_bytes(r))
                           for n, r in registers_at(b, t).items()})
                    for b in range(1, BANKS + 1)])
    return out


def _write(conn, regmap, batches: list[list]) -> float:
    from ess.db.writer import write_frames

    start = time.perf_counter()
    for frames in batches:
        write_frames(conn, frames, {regmap.key: regmap})
    return time.perf_counter() - start


def _copy_without_index(cluster, source: str, name: str) -> object:
    """A copy of `source` (CREATE DATABASE ... TEMPLATE) without the commit-time index. The copy
    needs `source` idle: TimescaleDB's background workers connect to it now and then, so their
    sessions are ended and the copy retried."""
    from ess.db.connect import connect_dsn

    admin = cluster.connect()
    try:
        for attempt in range(50):
            admin.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = :d AND pid <> pg_backend_pid()", d=source)
            try:
                admin.run(f"CREATE DATABASE {name} TEMPLATE {source} OWNER ess")
                break
            except Exception:  # noqa: BLE001 - "being accessed by other users": again
                if attempt == 49:
                    raise
                time.sleep(0.2)
    finally:
        admin.close()
    conn = connect_dsn(cluster.dsn(name), read_timeout=3600)
    conn.cursor().execute("DROP INDEX frames_committed_idx")
    conn.commit()
    return conn


def bench_rollup_cost(cluster) -> list[dict]:
    """Rollup maintenance as a share of ingest; see the module docstring."""
    from ess.db.rollup import run_rollups
    from ess.regmap import load_map

    regmap = load_map("default")
    names = (f"bench_rollup_on_{os.getpid()}", f"bench_rollup_off_{os.getpid()}")
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - \
        timedelta(days=2)
    spent = {"index": 0.0, "job": 0.0, "base": 0.0}
    conns: list = []
    try:
        first = _db(cluster, names[0], regmap)
        t = time.perf_counter()
        _preload(first, day)
        preload_s = time.perf_counter() - t
        first.close()
        conns.append(_copy_without_index(cluster, *names))
        conns.insert(0, _db_conn(cluster, names[0]))
        t0 = int(day.timestamp()) + PRELOAD_HOURS * 3600
        for r in range(ROUNDS):
            batches = _statements(regmap, r * SECONDS_PER_ROUND, t0)
            order = [(conns[0], "index"), (conns[1], "base")]
            for conn, key in order[::1 if r % 2 else -1]:
                spent[key] += _write(conn, regmap, batches)
            start = time.perf_counter()
            assert run_rollups(conns[0], [regmap]).complete
            spent["job"] += time.perf_counter() - start
    finally:
        for conn in conns:
            conn.close()
        for name in names:
            cluster.drop_database(name)
    return _cost_figure(spent, preload_s, cluster.timescale)


def _db_conn(cluster, name: str):
    from ess.db.connect import connect_dsn

    return connect_dsn(cluster.dsn(name), read_timeout=3600)


def _cost_figure(spent: dict, preload_s: float, timescale: bool) -> list[dict]:
    frames = ROUNDS * SECONDS_PER_ROUND * BANKS
    with_all = frames / (spent["index"] + spent["job"])
    without = frames / spent["base"]
    share = 100 * (1 - with_all / without)
    db = "TimescaleDB" if timescale else "PostgreSQL"
    return [{"figure": "rollup maintenance: writer frames/s with the commit-time index and the "
                       "rollup job vs without either (end of a day, 10 banks)",
             "ours": with_all, "baseline": without, "unit": "frames/s",
             "target": "maintenance <= 20% of ingest", "higher_is_better": True,
             "note": f"rollup maintenance: {db}, {PRELOAD_HOURS} h of {BANKS} banks preloaded "
                     f"in SQL ({preload_s:.0f} s), then {ROUNDS} rounds of {SECONDS_PER_ROUND} s "
                     f"x {BANKS} banks (10-frame statements, in process), alternating which "
                     f"database goes first; writing took {spent['index']:.2f} s with the index "
                     f"and {spent['base']:.2f} s without, the job {spent['job']:.2f} s in all: "
                     f"maintenance is {share:.1f}% of ingest"}]


def _month_of_bank(conn, regmap, start: datetime) -> None:
    """30 days of one bank at 1 Hz, in SQL: raw `bank` rows and their ledger rows."""
    from ess.db.quote import ident
    from ess.db.schema import sql_type

    exprs = []
    for k, f in enumerate(regmap.table_fields("bank")):
        if sql_type(f) == "real":
            exprs.append(f"({(f.min or 0) + 1} + 10 * sin(e / {600 + 37 * k}))::real")
        else:
            exprs.append("(mod(e::bigint, 3) = 0)::int::smallint")
    cols = ", ".join(ident(c) for c in regmap.columns("bank"))
    series = ("FROM (SELECT g AS ts, extract(epoch FROM g) AS e FROM generate_series("
              "%s::timestamptz, %s::timestamptz - interval '1 second', "
              "interval '1 second') g) x")
    end = start + timedelta(days=DAYS)
    cur = conn.cursor()
    cur.execute(f"INSERT INTO bank (ts, site_id, bank_id, {cols}) "
                f"SELECT ts, 'bench-month', 1, {', '.join(exprs)} {series}", (start, end))
    cur.execute("INSERT INTO frames (ts, site_id, bank_id, seq, map_id, map_version, committed) "
                f"SELECT ts, 'bench-month', 1, e::bigint, 'default', 1, now() {series}",
                (start, end))
    conn.commit()
    cur.execute("ANALYZE bank")
    conn.commit()


ROLLUP_QUERY = ("SELECT bucket, bank_soc_mean, bank_soc_min, bank_soc_max, bank_power_mean "
                "FROM bank_1m WHERE site_id = 'bench-month' AND bank_id = 1 "
                "AND bucket >= %s AND bucket < %s ORDER BY bucket")
RAW_QUERY = ("SELECT date_trunc('minute', ts), avg(bank_soc), min(bank_soc), max(bank_soc), "
             "avg(bank_power) FROM bank WHERE site_id = 'bench-month' AND bank_id = 1 "
             "AND ts >= %s AND ts < %s GROUP BY 1 ORDER BY 1")


def _best(conn, sql: str, span: tuple) -> tuple[float, int]:
    """The query's best execution time in the database of 3 (EXPLAIN ANALYZE, no per-row
    timing) and its row count."""
    times, n = [], 0
    cur = conn.cursor()
    for _ in range(3):
        cur.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql, span)
        plan = cur.fetchone()[0]
        plan = (plan if isinstance(plan, list) else json.loads(plan))[0]
        times.append(plan["Execution Time"] / 1000)
        n = plan["Plan"]["Actual Rows"]
    conn.rollback()
    return min(times), n


def bench_rollup_query(cluster) -> list[dict]:
    """A 30-day 1-minute series of one bank from bank_1m vs from raw rows."""
    from ess.db.rollup import rebuild
    from ess.regmap import load_map

    regmap = load_map("default")
    name = f"bench_month_{os.getpid()}"
    conn = _db(cluster, name, regmap)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0,
                                      microsecond=0) - timedelta(days=DAYS + 1)
    span = (start, start + timedelta(days=DAYS))
    try:
        t = time.perf_counter()
        _month_of_bank(conn, regmap, start)
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        rebuild(conn, [regmap], *span)
        rebuild_s = time.perf_counter() - t
        ours, n_ours = _best(conn, ROLLUP_QUERY, span)
        raw, n_raw = _best(conn, RAW_QUERY, span)
    finally:
        conn.close()
        cluster.drop_database(name)
    assert n_ours == n_raw == DAYS * 1440, (n_ours, n_raw)
    return [{"figure": "30-day 1-minute series of one bank: from bank_1m vs from raw rows",
             "ours": ours, "baseline": raw, "unit": "s", "target": "< 1 s",
             "higher_is_better": False,
             "note": f"30-day query: {DAYS * 86400:,} raw bank rows of one bank at 1 Hz made in "
                     f"SQL ({load_s:.0f} s), its rollups rebuilt in {rebuild_s:.0f} s; each "
                     f"query makes {n_ours:,} rows; time in the database (EXPLAIN ANALYZE), "
                     f"best of 3. Fetching the rows into Python (pg8000) adds ~1 s to both"}]
