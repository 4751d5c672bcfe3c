"""The events table in PostgreSQL: the window's reads and writes, and `maintain`, the entry.

`maintain(conn, regmap, touches)` runs in the caller's transaction, after the batch's rows are
written in it: it takes each touched bank's advisory lock (in a fixed order), so concurrent
batches of a bank derive one after the other, each seeing the rows the ones before committed.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import numpy as np

from ..regmap.model import RegisterMap
from . import sql
from .episodes import Episode
from .states import BankTouch
from .window import Rows, changed_keys, maintain_bank

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_time(us: float | None) -> datetime | str | None:
    """µs since the epoch as a timestamptz parameter (infinities as PostgreSQL spells them)."""
    if us is None:
        return None
    if us in (float("inf"), float("-inf")):
        return "infinity" if us > 0 else "-infinity"
    return _EPOCH + timedelta(microseconds=int(us))


def lock_key(site: str, bank: int) -> int:
    """A bank's advisory lock key (a signed 32-bit CRC of `site/bank`)."""
    k = zlib.crc32(f"{site}/{bank}".encode())
    return k - (1 << 32) if k >= 1 << 31 else k


def _episode(r) -> Episode:
    site, bank, rack, alarm, severity, since, raised, rv, cleared, cv = r
    return Episode(site, bank, rack, alarm, severity, since, raised,
                   None if rv is None else float(rv), cleared,
                   None if cv is None else float(cv))


def _floats(rows: list, first: int) -> np.ndarray:
    """Columns from `first` on as float64, NaN for NULL."""
    if not rows:
        return np.empty((0, 0))
    return np.array([[np.nan if v is None else float(v) for v in r[first:]] for r in rows],
                    dtype=np.float64)


class PgStore:
    """The window's Store over one connection (in its transaction)."""

    def __init__(self, conn, racks: int):
        self.cur = conn.cursor()
        self.racks = list(range(1, racks + 1))

    def episodes(self, site: str, bank: int, lo: float, hi: float) -> list[Episode]:
        self.cur.execute(sql.OVERLAPPING, (site, bank, as_time(hi), as_time(lo)))
        return [_episode(r) for r in self.cur.fetchall()]

    def lock(self, touches: list[BankTouch]) -> dict[tuple[str, int], list[Episode]]:
        """Take the touched banks' locks (in key order), then read the episodes overlapping
        each one's batch range: one statement (sql.LOCK)."""
        keys = sorted({lock_key(t.site, t.bank) for t in touches})
        self.cur.execute(sql.LOCK, (keys, [t.site for t in touches], [t.bank for t in touches],
                                    [as_time(t.first) for t in touches],
                                    [as_time(t.last) for t in touches]))
        out: dict[tuple[str, int], list[Episode]] = {}
        for r in self.cur.fetchall():
            e = _episode(r)
            out.setdefault((e.site, e.bank), []).append(e)
        return out

    def last_ts(self, site: str, bank: int, table: str, after: int) -> int | None:
        self.cur.execute(sql.LAST_POLL, (site, bank, as_time(after)))
        return self.cur.fetchone()[0]

    def rows(self, site: str, bank: int, table: str, columns: tuple[str, ...], lo: int,
             hi: int) -> Rows:
        racked = table == "rack"
        params = [site, bank] + ([self.racks] if racked else []) + [as_time(lo), as_time(hi)]
        self.cur.execute(sql.rows_sql(table, columns, racked), params)
        got = self.cur.fetchall()
        first = 2 if racked else 1
        values = _floats(got, first).reshape(len(got), len(columns))
        return Rows(np.array([r[0] for r in got], dtype=np.int64),
                    np.array([r[1] for r in got], dtype=np.int64) if racked else None,
                    values, columns)

    def last_known(self, site: str, bank: int, table: str, column: str, rack: int | None,
                   before: int) -> int | None:
        racked = table == "rack"
        params = [site, bank] + ([rack] if racked else []) + [as_time(before)]
        self.cur.execute(sql.last_known_sql(table, column, racked), params)
        row = self.cur.fetchone()
        return None if row is None else row[0]

    def apply(self, delete: list[Episode], update: list[tuple[Episode, Episode]],
              insert: list[Episode]) -> None:
        for e in delete:
            self.cur.execute(sql.DELETE, _where(e))
        for old, new in update:
            self.cur.execute(sql.UPDATE, (as_time(new.since), as_time(new.raised),
                                          new.raised_value, as_time(new.cleared),
                                          new.cleared_value, *_where(old)))
        for e in insert:
            self.cur.execute(sql.INSERT, (e.site, e.bank, e.rack, e.alarm, e.severity,
                                          as_time(e.since), as_time(e.raised), e.raised_value,
                                          as_time(e.cleared), e.cleared_value))


def _where(e: Episode) -> tuple:
    return (e.site, e.bank, e.alarm, e.rack or 0, as_time(e.since))


def quiet(regmap: RegisterMap, touches: dict[tuple[str, int], BankTouch],
          stored: dict[tuple[str, int], list[Episode]]) -> bool:
    """True when the batch can change no episode: `stored` are the episodes overlapping each
    bank's batch range, read under the banks' locks after the batch's rows were written."""
    return not any(changed_keys(regmap, t, stored.get(key, [])) for key, t in touches.items())


def maintain(conn, regmap: RegisterMap, touches: dict[tuple[str, int], BankTouch]
             ) -> list[Episode]:
    """Bring the episodes of the touched banks up to date with their stored rows, once the
    batch's rows are committed, in a transaction of its own; return the episodes raised.

    The banks' locks come first (in key order): batches of a bank are derived one after
    another, each reading what the ones before committed. Nothing is written when the batch can
    change nothing (`quiet`); running it again changes nothing.
    """
    if not touches:
        return []
    was = conn.autocommit
    conn.autocommit = False
    try:
        store = PgStore(conn, regmap.racks)
        batch = list(touches.values())
        stored = store.lock(batch)
        raised: list[Episode] = []
        for t in batch:
            raised += maintain_bank(store, regmap, t, stored.get((t.site, t.bank), []))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = was
    return raised
