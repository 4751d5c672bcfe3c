"""The events table in PostgreSQL: the window's reads and writes, and `maintain`, the entry.

`maintain(conn, regmap, touches)` runs once the batch's rows are committed. One prepared
statement takes the touched banks' advisory locks (in a fixed order) and reads the episodes
overlapping each bank's batch: when they show the batch can change nothing (`quiet`, nearly
always), that is all. Otherwise one transaction takes the locks again, so batches of a bank are
derived one after another, each reading what the ones before committed, and updates the window.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ..db.pg import run_prepared
from ..regmap.model import RegisterMap
from ..wire.crc import as_int4
from ..wire.times import US_MAX, US_MIN, iso, to_datetime
from ..wire.transaction import transaction
from . import sql
from .episodes import Episode
from .states import BankTouch, touches
from .window import Rows, changed_keys, maintain_bank


def as_time(us: float | None) -> datetime | str | None:
    """µs since the epoch as a timestamptz parameter; a bound past the years 1..9999 (a window
    reaching beyond them) as PostgreSQL's infinities."""
    if us is None:
        return None
    if us > US_MAX:
        return "infinity"
    if us < US_MIN:
        return "-infinity"
    return to_datetime(int(us))


def lock_key(site: str, bank: int) -> int:
    """A bank's advisory lock key (the signed 32-bit CRC of `site/bank`)."""
    return as_int4(zlib.crc32(f"{site}/{bank}".encode()))


def _episode(r) -> Episode:
    site, bank, rack, alarm, severity, since, raised, rv, cleared, cv, announced = r
    return Episode(site, bank, rack, alarm, severity, since, raised,
                   None if rv is None else float(rv), cleared,
                   None if cv is None else float(cv), announced)


@dataclass
class Locked:
    """What the lock step read, per bank: the episodes that may change, and the keys whose
    episode cannot (active across the whole batch, which only raises or holds them)."""

    episodes: dict[tuple[str, int], list[Episode]] = field(default_factory=dict)
    covered: dict[tuple[str, int], set] = field(default_factory=dict)


def _key(text: str) -> tuple[str, int | None]:
    alarm, rack = text.rsplit("/", 1)
    return alarm, int(rack) or None


def _array(values) -> str:
    """A PostgreSQL array literal of text values (each quoted)."""
    return "{" + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "}"


def _twice(touches: list[BankTouch]) -> set[tuple[str, int]]:
    """Banks summarised more than once in a batch (frames of two map versions)."""
    return {k for k, n in Counter((t.site, t.bank) for t in touches).items() if n > 1}


def lock_params(touches: list[BankTouch]) -> list[str]:
    """The lock step's parameters: the banks' lock keys, then per bank its site, bank, first
    and last poll, and steady keys (see sql.LOCK_FUNCTION_SQL)."""
    keys = "{" + ",".join(map(str, sorted({lock_key(t.site, t.bank) for t in touches}))) + "}"
    twice = _twice(touches)         # such a bank's episodes all come back (parse_locked)
    steady = ["" if (t.site, t.bank) in twice else " ".join(f"{a}/{r or 0}" for a, r in t.steady())
              for t in touches]
    return [keys, _array(t.site for t in touches),
            "{" + ",".join(str(t.bank) for t in touches) + "}",
            _array(iso(t.first) for t in touches), _array(iso(t.last) for t in touches),
            _array(steady)]


def parse_locked(text: str, touches: list[BankTouch]) -> Locked:
    """The lock step's text (sql.lock_text) as episodes and covered keys per bank.

    A bank summarised twice (frames of two map versions in one statement) sends no steady keys
    (lock_params): every episode overlapping its ranges comes back, none counts as covered, and
    the window finds what may change; one summary's covered keys never hide another's raise.
    """
    out = Locked()
    uncovered: dict[tuple[str, int], set] = {}
    for line in text.split("\n") if text else ():
        f = line.split(",")
        site, bank = f[0], int(f[1])
        if not f[3]:                       # the bank's own row
            uncovered[(site, bank)] = {_key(k) for k in f[11].split()}
            continue
        out.episodes.setdefault((site, bank), []).append(Episode(
            site, bank, int(f[2]) if f[2] else None, f[3], f[4], int(f[5]), int(f[6]),
            float(f[7]), int(f[8]) if f[8] else None, float(f[9]) if f[9] else None,
            int(f[10]) if f[10] else None))
    twice = _twice(touches)
    for t in touches:
        key = (t.site, t.bank)
        out.covered[key] = set() if key in twice else t.steady() - uncovered.get(key, set())
    return out


def lock_read(conn, touches: list[BankTouch]) -> Locked:
    """The lock step as a statement of its own (in a transaction the locks stay taken)."""
    return parse_locked(run_prepared(conn, sql.LOCK, lock_params(touches))[0][0], touches)


def _floats(rows: list, first: int, width: int) -> np.ndarray:
    """Columns from `first` on as float64 (rows x width), NaN for NULL."""
    return np.array([[np.nan if v is None else float(v) for v in r[first:]] for r in rows],
                    dtype=np.float64).reshape(len(rows), width)


class PgStore:
    """The window's Store over one cursor (in its transaction)."""

    def __init__(self, cur, racks: int):
        self.cur = cur
        self.racks = list(range(1, racks + 1))

    def episodes(self, site: str, bank: int, alarms: list[str], lo: float,
                 hi: float) -> list[Episode]:
        self.cur.execute(sql.OVERLAPPING, (site, bank, alarms, as_time(hi),
                                           site, bank, alarms, as_time(hi), as_time(lo)))
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
                                          as_time(e.cleared), e.cleared_value,
                                          as_time(e.raised)))


def _where(e: Episode) -> tuple:
    return (e.site, e.bank, e.alarm, e.rack or 0, as_time(e.since))


def quiet(regmap: RegisterMap, touches: dict[tuple[str, int], BankTouch],
          locked: Locked) -> bool:
    """True when the batch can change no episode (`locked`: read under the banks' locks after
    the batch's rows were written)."""
    return not any(changed_keys(regmap, t, locked.episodes.get(key, []),
                                locked.covered.get(key, set()))
                   for key, t in touches.items())


def maintain(conn, regmap: RegisterMap, touches: dict[tuple[str, int], BankTouch],
             locked: Locked | None = None) -> list[Episode]:
    """Bring the touched banks' episodes up to date with their stored rows, once the batch's
    rows are committed; return the episodes raised (inserted). `locked`: the lock step's read,
    when the writer's statement did it (else it is done here first). Idempotent: running it
    again changes nothing."""
    if not touches:
        return []
    batch = list(touches.values())
    if quiet(regmap, touches, locked if locked is not None else lock_read(conn, batch)):
        return []
    raised: list[Episode] = []
    with transaction(conn, begin="BEGIN") as cur:
        locked = lock_read(conn, batch)
        store = PgStore(cur, regmap.racks)
        for t in batch:
            key = (t.site, t.bank)
            raised += maintain_bank(store, regmap, t, locked.episodes.get(key, []),
                                    locked.covered.get(key, set()))
    return raised


def batch_touches(decoded, rewrite: bool = False
                  ) -> list[tuple[RegisterMap, dict[tuple[str, int], BankTouch]]]:
    """What a batch brings to each bank, per map with alarms (the writer's Decoded: per map,
    its frames and decoded rows); `rewrite`: its rows replace stored ones."""
    return [(regmap, touches(regmap, frames, tables, rewrite))
            for regmap, frames, tables in decoded.groups if regmap.alarms]


def after_write(conn, touched: list, locked_text: str | None) -> list[Episode]:
    """Maintain the episodes of a batch written (`touched`: batch_touches), map by map, with
    what the statement's lock step read (`locked_text`; None: it did not run); return the
    episodes raised."""
    banks = [t for _, by_bank in touched for t in by_bank.values()]
    locked = parse_locked(locked_text, banks) if locked_text is not None else None
    raised: list[Episode] = []
    for regmap, by_bank in touched:
        raised += maintain(conn, regmap, by_bank, locked)
    return raised
