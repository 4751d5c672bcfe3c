"""The events table in PostgreSQL: the window's reads and writes, and `maintain`, the entry.

`maintain(conn, regmap, touches)` runs once the batch's rows are committed. One prepared
statement takes the touched banks' advisory locks (in a fixed order) and reads the episodes
overlapping each bank's batch: when they show the batch can change nothing (`quiet`, nearly
always), that is all. Otherwise one transaction takes the locks again, so batches of a bank are
derived one after another, each reading what the ones before committed, and updates the window.
"""

from __future__ import annotations

import zlib
from datetime import datetime

import numpy as np

from ..db.pg import run_prepared
from ..regmap.model import RegisterMap
from ..wire.crc import as_int4
from ..wire.times import iso, to_datetime
from ..wire.transaction import transaction
from . import sql
from .episodes import Episode
from .states import BankTouch, touches
from .window import Rows, changed_keys, maintain_bank


def as_time(us: float | None) -> datetime | str | None:
    """µs since the epoch as a timestamptz parameter (infinities as PostgreSQL spells them)."""
    if us is None:
        return None
    if us in (float("inf"), float("-inf")):
        return "infinity" if us > 0 else "-infinity"
    return to_datetime(int(us))


def lock_key(site: str, bank: int) -> int:
    """A bank's advisory lock key (the signed 32-bit CRC of `site/bank`)."""
    return as_int4(zlib.crc32(f"{site}/{bank}".encode()))


def _episode(r) -> Episode:
    site, bank, rack, alarm, severity, since, raised, rv, cleared, cv = r
    return Episode(site, bank, rack, alarm, severity, since, raised,
                   None if rv is None else float(rv), cleared,
                   None if cv is None else float(cv))


def lock_read(conn, touches: list[BankTouch]) -> dict[tuple[str, int], list[Episode]]:
    """Take the banks' locks, then read the episodes overlapping each one's batch range: one
    prepared statement (in autocommit mode the locks go with it; in a transaction they stay)."""
    keys = "{" + ",".join(map(str, sorted({lock_key(t.site, t.bank) for t in touches}))) + "}"
    windows = "\n".join(f"{t.site},{t.bank},{iso(t.first)},{iso(t.last)}" for t in touches)
    out: dict[tuple[str, int], list[Episode]] = {}
    for r in run_prepared(conn, sql.LOCK, [keys, windows]):
        e = _episode(r)
        out.setdefault((e.site, e.bank), []).append(e)
    return out


def _floats(rows: list, first: int, width: int) -> np.ndarray:
    """Columns from `first` on as float64 (rows x width), NaN for NULL."""
    return np.array([[np.nan if v is None else float(v) for v in r[first:]] for r in rows],
                    dtype=np.float64).reshape(len(rows), width)


class PgStore:
    """The window's Store over one cursor (in its transaction)."""

    def __init__(self, cur, racks: int):
        self.cur = cur
        self.racks = list(range(1, racks + 1))

    def episodes(self, site: str, bank: int, lo: float, hi: float) -> list[Episode]:
        self.cur.execute(sql.OVERLAPPING, (site, bank, as_time(hi), as_time(lo)))
        return [_episode(r) for r in self.cur.fetchall()]

    def next_ts(self, site: str, bank: int, after: int) -> int | None:
        self.cur.execute(sql.NEXT_POLL, (site, bank, as_time(after)))
        return self.cur.fetchone()[0]

    def rows(self, site: str, bank: int, table: str, columns: tuple[str, ...], lo: int,
             hi: int) -> Rows:
        racked = table == "rack"
        params = [site, bank] + ([self.racks] if racked else []) + [as_time(lo), as_time(hi)]
        self.cur.execute(sql.rows_sql(table, columns, racked), params)
        got = self.cur.fetchall()
        return Rows(np.array([r[0] for r in got], dtype=np.int64),
                    np.array([r[1] for r in got], dtype=np.int64) if racked else None,
                    _floats(got, 2 if racked else 1, len(columns)), columns)

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
    bank's batch range, read under the banks' locks after the batch's rows were committed."""
    return not any(changed_keys(regmap, t, stored.get(key, [])) for key, t in touches.items())


def maintain(conn, regmap: RegisterMap, touches: dict[tuple[str, int], BankTouch]
             ) -> list[Episode]:
    """Bring the touched banks' episodes up to date with their stored rows, once the batch's
    rows are committed; return the episodes raised (inserted). Idempotent: running it again
    changes nothing."""
    if not touches:
        return []
    batch = list(touches.values())
    if quiet(regmap, touches, lock_read(conn, batch)):
        return []
    raised: list[Episode] = []
    with transaction(conn, begin="BEGIN") as cur:
        stored = lock_read(conn, batch)
        store = PgStore(cur, regmap.racks)
        for t in batch:
            raised += maintain_bank(store, regmap, t, stored.get((t.site, t.bank), []))
    return raised


def after_write(conn, decoded) -> list[Episode]:
    """Maintain the episodes of a written batch (the writer's Decoded: per map, its frames and
    decoded rows), map by map; return the episodes raised."""
    raised: list[Episode] = []
    for regmap, frames, tables in decoded.groups:
        raised += maintain(conn, regmap, touches(regmap, frames, tables))
    return raised
