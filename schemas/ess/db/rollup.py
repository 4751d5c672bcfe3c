"""Rollup upkeep: bring the 1-minute and 1-hour tables up to date with the raw rows.

Which buckets to recompute comes from the frame ledger: every stored frame has a `frames` row,
written in the same statement as its data rows, stamped `committed` (clock_timestamp() in that
statement; indexed). A run recomputes the minutes of every frame committed in
[watermark, T), then their hours, and moves the watermark to T, in one transaction.

Why no frame is missed although transactions commit out of order: a statement that stamps
`committed` < T holds a lock on `frames` from before it stamps (parse time) until its
transaction ends. After reading T, the run lists the transactions holding such a lock
(pg_locks) and waits until each has ended; then every frame stamped before T is committed (or
rolled back) and visible to the run's next statement. A wait that times out leaves the
watermark where it was, so the next run covers the same commit times again (recomputing is
idempotent). The watermark also stays `CLOCK_SLACK` behind T, against a stepped server clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..regmap import RegisterMap
from ..wire.transaction import reading, transaction
from .partitions import LOCK_KEY
from .quote import ident
from .rollup_schema import ROLLUP_STATE, rollup_specs
from .rollup_sql import DAYS_SQL, hour_sql, minute_sql, touched_sql
from .schema import LEDGER

ROLLUP_LOCK = LOCK_KEY + 1          # one rollup run at a time per database
STATE_NAME = "rollup"
STEP = timedelta(hours=1)           # commit time per transaction when catching up
CLOCK_SLACK = timedelta(seconds=5)
WAIT_TIMEOUT = 30.0                 # seconds to wait for writers in flight

_WRITERS_SQL = (
    "SELECT DISTINCT virtualtransaction FROM pg_locks WHERE locktype = 'relation' "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND relation = to_regclass(%s) AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()")


@dataclass
class RollupResult:
    """What one run did."""

    status: str = "done"                 # done, busy (another run holds the lock), empty
    windows: int = 0
    minutes: dict[str, int] = field(default_factory=dict)   # rollup table -> rows upserted
    hours: dict[str, int] = field(default_factory=dict)
    watermark: datetime | None = None
    waited_s: float = 0.0
    complete: bool = True                # False: a writer outlived the wait; watermark held


def _one(cur, sql: str, args: tuple = ()):
    cur.execute(sql, args)
    return cur.fetchone()


def wait_for_writers(conn, timeout: float = WAIT_TIMEOUT) -> bool:
    """Wait until every transaction that held a write lock on the ledger when called has ended;
    False when one is still running after `timeout` seconds."""
    with reading(conn) as cur:
        cur.execute(_WRITERS_SQL, (ident(LEDGER.name),))
        waiting = {r[0] for r in cur.fetchall()}
        deadline = time.monotonic() + timeout
        while waiting:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
            cur.execute(_WRITERS_SQL, (ident(LEDGER.name),))
            waiting &= {r[0] for r in cur.fetchall()}
        return True


def _start(conn) -> tuple[datetime | None, datetime]:
    """(stored watermark or the earliest commit time, now): the server's clock, read before the
    writers in flight are listed."""
    with reading(conn) as cur:
        (now,) = _one(cur, "SELECT clock_timestamp()")
        row = _one(cur, f"SELECT {ident('watermark')} FROM {ident(ROLLUP_STATE.name)} "
                        f"WHERE {ident('name')} = %s", (STATE_NAME,))
        if row is None:
            row = _one(cur, f"SELECT min({ident('committed')}) FROM {ident(LEDGER.name)}")
        return row[0], now


def _spans(days: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Runs of consecutive UTC days as [start, end): one statement per run reads only its
    days' partitions or chunks, however far apart the runs are (a late frame of last week)."""
    spans: list[list[datetime]] = []
    for d in days:
        if spans and spans[-1][1] == d:
            spans[-1][1] = d + timedelta(days=1)
        else:
            spans.append([d, d + timedelta(days=1)])
    return [(a, b) for a, b in spans]


def _window(conn, specs, lo: datetime, hi: datetime, mark: datetime | None,
            result: RollupResult, by: str = "committed") -> bool:
    """Recompute the buckets of the frames whose ledger `by` is in [lo, hi) and store `mark`
    (if any) as the watermark, in one transaction; False when another run holds the lock."""
    with transaction(conn, begin="BEGIN") as cur:
        if not _one(cur, "SELECT pg_try_advisory_xact_lock(%s)", (ROLLUP_LOCK,))[0]:
            return False
        cur.execute("SET LOCAL TIME ZONE 'UTC'")
        cur.execute("SET LOCAL work_mem = '64MB'")   # a window's aggregate stays in memory
        for k, sql in enumerate(touched_sql(by)):
            cur.execute(sql, (lo, hi) if k == 0 else ())
        cur.execute(DAYS_SQL)
        days = _spans([d for (d,) in cur.fetchall()])
        for level, target in (("1m", result.minutes), ("1h", result.hours)):
            for spec in specs:
                if spec.level != level:
                    continue
                sql = (minute_sql if level == "1m" else hour_sql)(spec)
                for span in days:
                    cur.execute(sql, span * 3)
                    target[spec.name] = target.get(spec.name, 0) + cur.rowcount
        if mark is not None:
            cur.execute(
                f"INSERT INTO {ident(ROLLUP_STATE.name)} ({ident('name')}, {ident('watermark')}, "
                f"{ident('updated')}) VALUES (%s, %s, now()) ON CONFLICT ({ident('name')}) DO "
                f"UPDATE SET {ident('watermark')} = EXCLUDED.{ident('watermark')}, "
                f"{ident('updated')} = EXCLUDED.{ident('updated')}", (STATE_NAME, mark))
            result.watermark = mark
    result.windows += 1
    return True


def run_rollups(conn, maps: list[RegisterMap], step: timedelta = STEP,
                wait_timeout: float = WAIT_TIMEOUT) -> RollupResult:
    """Recompute every bucket touched since the last run (see the module docstring)."""
    result = RollupResult()
    specs = [s for _, s in sorted(rollup_specs(maps).items())]
    start, now = _start(conn)
    t0 = time.monotonic()
    result.complete = wait_for_writers(conn, wait_timeout)
    result.waited_s = time.monotonic() - t0
    if start is None:
        result.status = "empty"
        return result
    end = now - CLOCK_SLACK if result.complete else now
    lo = start
    while lo < now:
        hi = min(lo + step, now)
        # the watermark moves only when every frame committed before it is visible
        mark = min(hi, end) if result.complete else None
        if mark is not None and mark < start:
            mark = start
        if not _window(conn, specs, lo, hi, mark, result):
            result.status = "busy"
            break
        lo = hi
    return result


def rebuild(conn, maps: list[RegisterMap], since: datetime, until: datetime,
            step: timedelta = timedelta(days=1)) -> RollupResult:
    """Recompute every bucket of the frames polled in [since, until), whatever their commit
    time (after `ess redecode --map` rewrote stored rows, or for rows the ledger predates);
    the watermark is left alone."""
    result = RollupResult()
    specs = [s for _, s in sorted(rollup_specs(maps).items())]
    lo = since
    while lo < until:
        hi = min(lo + step, until)
        if not _window(conn, specs, lo, hi, None, result, by="ts"):
            result.status = "busy"
            break
        lo = hi
    return result
