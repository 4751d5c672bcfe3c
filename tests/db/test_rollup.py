"""Rollups equal aggregates computed here from the raw rows, in TimescaleDB and plain PostgreSQL
mode, after frames delivered late, twice, replayed and out of order; and no frame committed while
a run is under way is missed."""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from ess.codec import BlockData, BlockStatus, Frame
from ess.db.connect import connect_dsn
from ess.db.migrate import migrate
from ess.db.quote import ident
from ess.db.rollup import rebuild, run_rollups
from ess.db.rollup_schema import rollup_specs
from ess.db.writer import write_frames
from ess.regmap import load_map

M = load_map("default")
SPECS = rollup_specs([M])
REAL = {(s.source, n): t == "real" for s in SPECS.values() for n, t in s.table.values}
# 10:58:20 UTC: the frames cross a minute boundary every 60 s and an hour boundary at 11:00
T0 = int(datetime(2025, 11, 25, 10, 58, 20, tzinfo=UTC).timestamp()) * 1_000_000


def _frames(bank: int, seqs, seed: int) -> list[Frame]:
    out = []
    for i in seqs:
        rng = np.random.default_rng([seed, bank, i])
        blocks = {b.name: BlockData(registers=Frame.registers_to_bytes(
            rng.integers(0, 1200, b.count).tolist())) for b in M.blocks}
        if i % 17 == 5:                       # a failed block: NULLs in its columns
            blocks["BMS1"] = BlockData(BlockStatus.TIMEOUT)
        if i % 23 == 7:
            blocks["PCS"] = BlockData(BlockStatus.TIMEOUT)
        us = T0 + i * 1_000_000
        out.append(Frame("roll-a", bank, i, us, us + 20_000, M.map_id, M.version, blocks))
    return out


def _rows(conn, sql: str, *args) -> list:
    cur = conn.cursor()
    cur.execute(sql, args)
    out = cur.fetchall()
    conn.rollback()
    return out


def _expected(conn, table: str, width: timedelta) -> dict:
    """{(bucket, site, bank[, rack]): {rollup column: value}} computed in Python from raw rows."""
    spec = SPECS[f"{table}_1m"]
    keys = spec.group_keys
    cols = [m.column for m in spec.measures]
    raw = _rows(conn, f"SELECT ts, {', '.join(ident(k) for k in keys)}, "
                      f"{', '.join(ident(c) for c in cols)}, out_of_range IS NOT NULL "
                      f"FROM {ident(table)}")
    groups: dict = defaultdict(list)
    for r in raw:
        ts = r[0].astimezone(UTC)
        start = ts - (ts - datetime(2000, 1, 1, tzinfo=UTC)) % width
        groups[(start, *r[1:1 + len(keys)])].append(r)
    out = {}
    for key, rows in groups.items():
        rows.sort(key=lambda r: r[0])
        want = {"samples": len(rows), "out_of_range_rows": sum(r[-1] for r in rows)}
        for k, m in enumerate(spec.measures):
            vals = [r[1 + len(keys) + k] for r in rows]
            seen = [v for v in vals if v is not None]
            # a `real` holds 57.8 as 57.79999923...: the database averages what it holds
            exact = [float(np.float32(v)) for v in seen] if m.sql_type == "real" else seen
            want[f"{m.column}_last"] = vals[-1]
            if m.status:
                want[f"{m.column}_any"] = (None if not seen
                                           else int(np.bitwise_or.reduce(np.array(seen))))
            else:
                want.update({f"{m.column}_min": min(seen, default=None),
                             f"{m.column}_max": max(seen, default=None),
                             f"{m.column}_mean": (math.fsum(exact) / len(seen)) if seen else None,
                             f"{m.column}_count": len(seen)})
        out[key] = want
    return out


def _stored(conn, name: str) -> dict:
    spec = SPECS[name]
    names = [n for n, _ in spec.table.values]
    rows = _rows(conn, f"SELECT bucket, {', '.join(ident(k) for k in spec.group_keys)}, "
                       f"{', '.join(ident(n) for n in names)} FROM {ident(name)}")
    k = 1 + len(spec.group_keys)
    return {(r[0].astimezone(UTC), *r[1:k]): dict(zip(names, r[k:], strict=True)) for r in rows}


def _check(conn) -> int:
    checked = 0
    for table in ("bank", "rack", "pcs", "etc"):
        for level, width in (("1m", timedelta(minutes=1)), ("1h", timedelta(hours=1))):
            want, got = _expected(conn, table, width), _stored(conn, f"{table}_{level}")
            assert set(got) == set(want), (table, level)
            for key, values in want.items():
                for col, v in values.items():
                    if col.endswith("_mean") and v is not None:     # real: ~7 digits
                        rel = 1e-6 if REAL[(table, col)] else 1e-12
                        assert got[key][col] == pytest.approx(v, rel=rel), (table, key, col)
                    else:
                        assert got[key][col] == v, (table, level, key, col)
                    checked += 1
    return checked


@pytest.fixture(params=["timescale", "partitioned"])
def conn(request, needs_service):
    dsn = request.getfixturevalue("timescale_db" if request.param == "timescale" else "plain_db")
    c = connect_dsn(dsn)
    assert migrate(c, [M], mode=request.param).mode == request.param
    yield c
    c.close()


def test_rollups_equal_raw_aggregates_after_late_duplicate_and_replayed_frames(conn):
    maps = {M.key: M}
    first = {b: _frames(b, range(0, 150, 2), seed=1) for b in (1, 2)}    # even seconds
    late = {b: _frames(b, range(1, 150, 2), seed=1) for b in (1, 2)}     # odd ones, later
    for b in (1, 2):
        for k in range(0, len(first[b]), 10):
            write_frames(conn, first[b][k:k + 10], maps)
    assert run_rollups(conn, [M]).minutes["bank_1m"] == 2 * 3    # 2 banks x 3 minutes
    _check(conn)
    for b in (1, 2):                   # late, shuffled, with copies of frames already stored
        batch = late[b][::-1] + first[b][5:9]
        for k in range(0, len(batch), 7):
            write_frames(conn, batch[k:k + 7], maps)
    write_frames(conn, first[1][:20], maps)                      # a replay: nothing new
    result = run_rollups(conn, [M])
    assert result.complete and result.hours["rack_1h"] == 2 * 2 * 8
    assert _rows(conn, "SELECT sum(samples) FROM bank_1m")[0][0] == 2 * 150
    assert _check(conn) > 5000
    before = {n: _stored(conn, n) for n in SPECS}
    again = run_rollups(conn, [M])                      # idempotent: same rows again
    rebuild(conn, [M], datetime(2025, 11, 25, tzinfo=UTC), datetime(2025, 11, 26, tzinfo=UTC))
    assert {n: _stored(conn, n) for n in SPECS} == before
    assert sum(again.minutes.values()) <= sum(result.minutes.values())


def test_a_frame_committed_during_the_run_is_rolled_up(timescale_db):
    """A transaction stamps its ledger row, then commits only after the run read its end time:
    the run waits for it, so the frame is in the rollup and the watermark is past it."""
    conn = connect_dsn(timescale_db)
    migrate(conn, [M])
    write_frames(conn, _frames(1, range(3), seed=2), {M.key: M})
    run_rollups(conn, [M])
    slow = connect_dsn(timescale_db)
    cur = slow.cursor()
    cur.execute("INSERT INTO frames (ts, site_id, bank_id, seq, committed) VALUES "
                "(%s, 'roll-a', 1, 99, clock_timestamp())",
                (datetime.fromtimestamp(T0 / 1e6 + 99, UTC),))
    cur.execute("INSERT INTO bank (ts, site_id, bank_id, bank_soc) VALUES (%s, 'roll-a', 1, 77)",
                (datetime.fromtimestamp(T0 / 1e6 + 99, UTC),))
    done = threading.Event()
    results = []
    worker = threading.Thread(target=lambda: (results.append(run_rollups(conn, [M])),
                                              done.set()))
    worker.start()
    time.sleep(0.5)
    assert not done.is_set(), "the run did not wait for the writer in flight"
    slow.commit()
    worker.join(10)
    assert results and results[0].complete and results[0].waited_s >= 0.4
    run_rollups(conn, [M])
    (soc,) = _rows(conn, "SELECT bank_soc_last, samples FROM bank_1m WHERE bucket = "
                         "date_trunc('minute', %s::timestamptz)",
                   datetime.fromtimestamp(T0 / 1e6 + 99, UTC))
    assert soc == [77, 1]
    slow.close()
    conn.close()


def test_a_run_that_cannot_wait_keeps_its_watermark(timescale_db):
    conn = connect_dsn(timescale_db)
    migrate(conn, [M])
    write_frames(conn, _frames(1, range(3), seed=3), {M.key: M})
    first = run_rollups(conn, [M])
    slow = connect_dsn(timescale_db)
    cur = slow.cursor()
    cur.execute("LOCK TABLE frames IN ROW EXCLUSIVE MODE")     # a writer that never finishes
    stuck = run_rollups(conn, [M], wait_timeout=0.3)
    assert not stuck.complete and stuck.watermark is None
    (mark,) = _rows(conn, "SELECT watermark FROM ess_rollup_state")
    assert mark[0] == first.watermark
    slow.rollback()
    slow.close()
    conn.close()
