"""Keep the events table equal to the episodes of the stored rows, batch by batch.

The table is a function of the stored rows (episodes.derive over each alarm's frames). A batch
adds frames in [a, b] (its first and last poll); this module recomputes only what they can
change, reading stored rows and episodes back through a `Store`:

- nothing, when no value of the batch raises and no stored episode overlaps [a, b];
- per alarm key, from a start with a known state: `a` with the episode active across `a` (when
  it was raised before `a`), else that episode's `since`, else the start of a pending condition
  ending just before `a` (`for` alarms: `onset`), else `a` with nothing active;
- forward, past `b`, until the derivation meets the stored one (`converge`): at a poll where
  both have the alarm active (the derived episode ends as the stored one does) or both have it
  inactive with nothing pending; or to the end of the data.

Stored episodes of the key in the window are matched to the derived ones (episodes.diff): an
episode is updated in place, never raised twice. The caller holds the bank's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from ..regmap.model import Alarm, RegisterMap
from .converge import Plan, converge, onsets
from .episodes import Episode, diff
from .states import BankTouch, Key

FORWARD_SPAN_US = 60_000_000     # first read past the batch; each next one doubles
_INF = float("inf")


@dataclass
class Rows:
    """Stored rows of one table and bank: poll times (µs), racks (rack table) and values."""

    ts: np.ndarray
    rack: np.ndarray | None
    values: np.ndarray            # rows x columns, float64, NaN for NULL
    columns: tuple[str, ...]

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        first = parts[0]
        return Rows(np.concatenate([p.ts for p in parts]),
                    None if first.rack is None else np.concatenate([p.rack for p in parts]),
                    np.concatenate([p.values for p in parts]), first.columns)

    def series(self, column: str, rack: int | None, lo: float, hi: float
               ) -> tuple[np.ndarray, np.ndarray]:
        """One key's (ts, values) with lo <= ts <= hi, in poll order."""
        mask = (self.ts >= lo) & (self.ts <= hi)
        if self.rack is not None:
            mask &= self.rack == rack
        return self.ts[mask], self.values[mask, self.columns.index(column)]


class Store(Protocol):
    """What the window needs of the database (ess.events.store.PgStore; tests: memory)."""

    def episodes(self, site: str, bank: int, alarms: list[str], lo: float,
                 hi: float) -> list[Episode]: ...

    def next_ts(self, site: str, bank: int, after: int) -> int | None: ...

    def rows(self, site: str, bank: int, table: str, columns: tuple[str, ...], lo: int,
             hi: int) -> Rows: ...

    def last_known(self, site: str, bank: int, table: str, column: str, rack: int | None,
                   before: int) -> int | None: ...

    def apply(self, delete: list[Episode], update: list[tuple[Episode, Episode]],
              insert: list[Episode]) -> None: ...


@lru_cache(maxsize=64)
def _names(regmap: RegisterMap) -> frozenset[str]:
    return frozenset(a.name for a in regmap.alarms)


def changed_keys(regmap: RegisterMap, touch: BankTouch, stored: list[Episode],
                 covered: set[Key] = frozenset()) -> list[Key]:
    """The alarm keys whose episodes the batch can change (empty: the cheap path). `stored`:
    episodes overlapping the batch; `covered`: keys whose episode is active across the whole
    batch, which only raises or holds them (left out of `stored`). Rows that replace stored
    ones (`touch.rewrite`) can change any key they hold, even by a NULL (it may have been the
    raise, or the clear that ended a run)."""
    names = _names(regmap)
    by_key: dict[Key, list[Episode]] = {}
    for e in stored:
        by_key.setdefault(e.key, []).append(e)
    out = []
    keys = touch.raising() | set(by_key) | (touch.keys() if touch.rewrite else set())
    for key in sorted(keys - covered, key=lambda k: (k[0], k[1] or 0)):
        if key[0] not in names:
            continue
        n_raise, n_clear, n_hold = touch.counts(key)
        if not n_raise + n_clear + n_hold and not touch.rewrite:
            continue                      # only NULLs: nothing known changes
        if not n_clear and any(e.raised < touch.first and e.end > touch.last
                               for e in by_key.get(key, ())):
            continue                      # active across the whole batch, which clears nothing
        out.append(key)
    return out


def maintain_bank(store: Store, regmap: RegisterMap, touch: BankTouch,
                  stored: list[Episode], covered: set[Key] = frozenset()) -> list[Episode]:
    """Update one bank's episodes for a batch; `stored` are those overlapping [first, last]
    (`covered`: see changed_keys). Returns the episodes inserted (newly raised)."""
    keys = changed_keys(regmap, touch, stored, covered)
    if not keys:
        return []
    alarms = {a.name: a for a in regmap.alarms}
    plans = [_plan(touch, alarms[name], rack, [e for e in stored if e.key == (name, rack)])
             for name, rack in keys]
    delete, update, insert = [], [], []
    for table in sorted({p.alarm.table for p in plans}):
        mine = [p for p in plans if p.alarm.table == table]
        onsets(store, touch, table, mine)
        old = _forward(store, touch, table, mine, stored)
        for p in mine:
            d, u, i = diff(sorted((e for e in old if e.key == (p.alarm.name, p.rack)
                                   and e.overlaps(p.start, p.stop)), key=lambda e: e.since),
                           p.episodes)
            delete += d
            update += u
            insert += i
    store.apply(delete, update, insert)
    return insert


def _plan(touch: BankTouch, alarm: Alarm, rack: int | None, old: list[Episode]) -> Plan:
    """Where a key's window starts, and the episode active there (continued as is)."""
    a = touch.first
    at_a = next((e for e in old if e.since <= a <= e.end), None)
    if at_a is not None and at_a.raised < a:
        return Plan(alarm, rack, a, at_a)
    if at_a is not None:
        return Plan(alarm, rack, at_a.since, None)
    pending = bool(alarm.for_s and (touch.rewrite or touch.counts((alarm.name, rack))[0]))
    return Plan(alarm, rack, a, None, lookback=pending)


def _forward(store: Store, touch: BankTouch, table: str, plans: list[Plan],
             stored: list[Episode]) -> list[Episode]:
    """Read the table's rows from the earliest start on, chunk by chunk past the batch, until
    every plan's derivation meets the stored episodes (or the data ends); returns the stored
    episodes of the window, for the diff (`stored`, those overlapping the batch, when the window
    is the batch's range)."""
    site, bank, b = touch.site, touch.bank, touch.last
    columns = tuple(sorted({p.alarm.column for p in plans}))
    alarms = sorted({p.alarm.name for p in plans})
    lo = min(p.start for p in plans)
    parts = [store.rows(site, bank, table, columns, lo, b)]
    end, span = b, FORWARD_SPAN_US
    while True:
        rows = Rows.concat(parts)
        old = (stored if lo >= touch.first and end == b
               else store.episodes(site, bank, alarms, lo, end))
        waiting = [p for p in plans if p.stop is None]
        for p in waiting:
            converge(p, touch, rows, [e for e in old if e.key == (p.alarm.name, p.rack)], end)
        waiting = [p for p in waiting if p.stop is None]
        if not waiting:
            return old
        nxt = store.next_ts(site, bank, end)
        if nxt is None:                  # the data ends here
            for p in waiting:
                converge(p, touch, rows, [e for e in old if e.key == (p.alarm.name, p.rack)],
                         end, last=True)
            return old
        end, span = max(nxt, end + span), span * 2
        parts.append(store.rows(site, bank, table, columns, nxt, end))
