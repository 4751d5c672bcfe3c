"""Retention on 40 days of rows (made in SQL, one every 3 hours) with raw_days = 30, in both
modes: the old days' slices go, their rollups, data status and retention record stay; a day
without a manifest, a day whose manifest disagrees with the database and a day holding rows of
an unconfigured site keep their slices; a row arriving later in a retired day is never dropped."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pg8000.dbapi
import pytest
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.partitions import ensure_days
from ess.db.retention import RetentionPolicy, local_days, prune_rollups, retire
from ess.db.rollup import run_rollups
from ess.regmap import load_map
from retention_data import (
    GHOST,
    MISSING,
    TABLES,
    TODAY,
    WRONG,
    ZONES,
    counts,
    days_left,
    load,
    rows_by_day,
    run,
)

M = load_map("default")


@pytest.fixture(params=["timescale", "partitioned"])
def conn(request, needs_service):
    dsn = request.getfixturevalue("timescale_db" if request.param == "timescale" else "plain_db")
    c = connect_dsn(dsn)
    migrate(c, [M], mode=request.param)
    load(c, request.param == "partitioned")
    assert run_rollups(c, [M]).complete
    yield c
    c.close()


def test_forty_days_with_thirty_kept(conn):
    manifests = counts(conn)
    manifests.pop(("ret-seoul", MISSING))
    manifests[("ret-utc", WRONG)]["bank"] -= 1          # a row the export did not see
    rollups_before = run(conn, "SELECT count(*), sum(samples) FROM bank_1m")
    by_table = rows_by_day(conn)
    before = days_left(conn)
    results = retire(conn, ZONES, lambda site, day: manifests.get((site, day)), raw_days=30)
    after = days_left(conn)
    old = {TODAY - timedelta(days=d) for d in range(31, 41)}
    kept = {MISSING - timedelta(days=1), MISSING, WRONG, GHOST}
    assert {d for d in old if d in after} == kept
    assert all(after[d] == before[d] for d in before if d not in old or d in kept)
    assert [r["reason"] for r in results if not r["dropped"]] == ["not exported"] * 4
    mismatch = {(m["site"], m["day"]) for r in results for m in r.get("mismatch", [])}
    assert mismatch == {("ret-ghost", None), ("ret-seoul", MISSING.isoformat()),
                        ("ret-utc", WRONG.isoformat())}
    assert run(conn, "SELECT count(*), sum(samples) FROM bank_1m") == rollups_before
    assert run(conn, "SELECT count(*) FROM data_status") == [[41]]
    retired = run(conn, "SELECT tbl, sum(dropped) FROM ess_retired GROUP BY 1 ORDER BY 1")
    assert dict(retired) == {t: sum(by_table[(t, d)] for d in old - kept) for t in TABLES}

    # the manifest of the missing day appears: the two slices around it go, and the local day
    # before it (dropped in part already) adds up with what was dropped then
    manifests[("ret-seoul", MISSING)] = counts(conn)[("ret-seoul", MISSING)]
    retire(conn, ZONES, lambda site, day: manifests.get((site, day)), raw_days=30)
    assert {d for d in old if d in days_left(conn)} == {WRONG, GHOST}
    _late_row(conn, manifests)
    _prune(conn)


def _prune(conn) -> None:
    """Rollup tiers: 1-minute rows older than 35 days and 1-hour rows older than 38 go."""
    now = datetime.now(UTC)
    before = dict(run(conn, "SELECT 'm', count(*) FROM rack_1m UNION ALL "
                             "SELECT 'h', count(*) FROM rack_1h"))
    deleted = prune_rollups(conn, [M], [(s, 1) for s in ZONES], RetentionPolicy(30, 35, 38),
                            now=now)
    assert deleted["rack_1m"] > 0 and deleted["rack_1h"] > 0
    for table, days in (("rack_1m", 35), ("rack_1h", 38), ("bank_1m", 35)):
        (oldest, n), = run(conn, f"SELECT min(bucket), count(*) FROM {table} "
                                  "WHERE site_id <> 'ret-ghost'")     # not configured: kept
        assert oldest >= now - timedelta(days=days), table
    (left,) = run(conn, "SELECT count(*) FROM rack_1m")
    assert left[0] == before["m"] - deleted["rack_1m"]


def _late_row(conn, manifests: dict) -> None:
    """A row arriving in a retired day: its slice comes back and is never dropped."""
    day = TODAY - timedelta(days=38)
    assert day not in days_left(conn)
    if run(conn, "SELECT to_regclass('bank_p' || to_char(%s::date, 'YYYYMMDD'))", day)[0][0] \
            is None and not run(conn, "SELECT count(*) FROM pg_extension "
                                       "WHERE extname = 'timescaledb'")[0][0]:
        ensure_days(conn, [day])                       # as ingest does for a day without one
    late = datetime.combine(day, time(5, 0, 1), UTC)
    run(conn, "INSERT INTO bank (ts, site_id, bank_id, bank_soc) VALUES (%s, 'ret-utc', 1, 9)",
         late)
    results = retire(conn, ZONES, lambda site, day: manifests.get((site, day)), raw_days=30)
    refused = [r for r in results if r["start"].startswith(day.isoformat())]
    assert refused and not refused[0]["dropped"]
    assert days_left(conn)[day] == 1


def test_recent_ranges_and_other_roles_are_refused(timescale_db):
    conn = connect_dsn(timescale_db)
    migrate(conn, [M])
    start = datetime.combine(TODAY - timedelta(days=1), time(), UTC)
    cur = conn.cursor()
    with pytest.raises(pg8000.dbapi.DatabaseError) as err:
        cur.execute("SELECT ess_retire_raw(%s, %s, '{}'::jsonb, '{}'::jsonb)",
                    (start, start + timedelta(days=1)))
    assert err.value.args[0]["C"] == "22023"
    conn.rollback()
    assert run(conn, "SELECT has_function_privilege('public', "
                      "'ess_retire_raw(timestamptz, timestamptz, jsonb, jsonb)', 'EXECUTE')") \
        == [[False]]
    conn.close()


def test_local_days_of_a_utc_day():
    lo = datetime(2026, 3, 28, tzinfo=UTC)
    hi = lo + timedelta(days=1)
    assert [d.day for d in local_days(lo, hi, "Asia/Seoul")] == [28, 29]
    assert [d.day for d in local_days(lo, hi, "America/New_York")] == [27, 28]
    assert [d.day for d in local_days(lo, hi, "UTC")] == [28]
