"""Keep the events table equal to the episodes of the stored rows, batch by batch.

The table is a function of the stored rows (episodes.derive over each alarm's frames). A batch
adds frames in [a, b] (its first and last poll); this module recomputes only what they can
change, reading stored rows and episodes back through a `Store`:

- nothing, when no value of the batch raises and no stored episode overlaps [a, b];
- per alarm key, from a start with a known state: `a` with the episode active across `a` (when
  it was raised before `a`), else that episode's `since`, else the start of a pending condition
  ending just before `a` (`for` alarms), else `a` with nothing active;
- up to a stop after which nothing can change: the first stored CLEAR frame at or after `b`
  (the cleared frame of the episode across `b`, else searched forward), or the end of the data.

Stored episodes of the key within [start, stop] are matched to the derived ones (episodes.diff):
an episode is updated in place, never raised twice. The caller holds the bank's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..regmap.model import Alarm, RegisterMap
from .episodes import Episode, derive, diff
from .states import CLEAR, RAISE, UNKNOWN, BankTouch, Key, classify

FORWARD_SPAN_US = 60_000_000     # first forward read when searching a stop; doubles each time
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

    def episodes(self, site: str, bank: int, lo: float, hi: float) -> list[Episode]: ...

    def last_ts(self, site: str, bank: int, table: str, after: int) -> int | None: ...

    def rows(self, site: str, bank: int, table: str, columns: tuple[str, ...], lo: int,
             hi: int) -> Rows: ...

    def last_known(self, site: str, bank: int, table: str, column: str, rack: int | None,
                   before: int) -> int | None: ...

    def apply(self, delete: list[Episode], update: list[tuple[Episode, Episode]],
              insert: list[Episode]) -> None: ...


@dataclass
class _Plan:
    alarm: Alarm
    rack: int | None
    start: int
    state: Episode | None        # the episode active at `start`, continued
    stop: float | None           # first CLEAR frame at or after b; inf: the end; None: search


def changed_keys(regmap: RegisterMap, touch: BankTouch, stored: list[Episode]) -> list[Key]:
    """The alarm keys whose episodes the batch can change (empty: the cheap path)."""
    names = {a.name for a in regmap.alarms}
    by_key: dict[Key, list[Episode]] = {}
    for e in stored:
        by_key.setdefault(e.key, []).append(e)
    out = []
    for key in sorted(touch.raising() | set(by_key), key=lambda k: (k[0], k[1] or 0)):
        if key[0] not in names:
            continue
        n_raise, n_clear, n_hold = touch.counts(key)
        if not n_raise + n_clear + n_hold:
            continue                      # only NULLs: nothing known changes
        if not n_clear and any(e.raised < touch.first and e.end > touch.last
                               for e in by_key.get(key, ())):
            continue                      # active across the whole batch, which clears nothing
        out.append(key)
    return out


def maintain_bank(store: Store, regmap: RegisterMap, touch: BankTouch,
                  stored: list[Episode]) -> list[Episode]:
    """Update one bank's episodes for a batch; `stored` are those overlapping [first, last].
    Returns the episodes inserted (newly raised)."""
    keys = changed_keys(regmap, touch, stored)
    if not keys:
        return []
    alarms = {a.name: a for a in regmap.alarms}
    plans = [_plan(store, touch, alarms[name], rack, [e for e in stored if e.key == (name, rack)])
             for name, rack in keys]
    rows = {t: _read(store, touch, t, [p for p in plans if p.alarm.table == t])
            for t in {p.alarm.table for p in plans}}
    lo, hi = min(p.start for p in plans), max(p.stop or _INF for p in plans)
    old = store.episodes(touch.site, touch.bank, lo, hi)
    delete, update, insert = [], [], []
    for p in plans:
        stop = _INF if p.stop is None else p.stop
        ts, values = rows[p.alarm.table].series(p.alarm.column, p.rack, p.start, stop)
        new = derive(p.alarm, (touch.site, touch.bank, p.rack), ts, values, p.state)
        mine = sorted((e for e in old if e.key == (p.alarm.name, p.rack)
                       and e.overlaps(p.start, stop)), key=lambda e: e.since)
        d, u, i = diff(mine, new)
        delete += d
        update += u
        insert += i
    store.apply(delete, update, insert)
    return insert


def _plan(store: Store, touch: BankTouch, alarm: Alarm, rack: int | None,
          old: list[Episode]) -> _Plan:
    a, b = touch.first, touch.last
    at_a = next((e for e in old if e.since <= a <= e.end), None)
    at_b = next((e for e in old if e.since <= b <= e.end), None)
    stop = None if at_b is None else at_b.end
    if at_a is not None and at_a.raised < a:
        return _Plan(alarm, rack, a, at_a, stop)
    if at_a is not None:
        return _Plan(alarm, rack, at_a.since, None, stop)
    start = a
    if alarm.for_s and touch.counts((alarm.name, rack))[0]:
        start = _onset(store, touch, alarm, rack)
    return _Plan(alarm, rack, start, None, stop)


def _onset(store: Store, touch: BankTouch, alarm: Alarm, rack: int | None) -> int:
    """Start of a pending condition (consecutive RAISE frames) ending just before the batch;
    the batch's first poll when there is none. Such a condition is shorter than `for` (or it
    would have been raised, and an episode would cover the batch's start)."""
    p = store.last_known(touch.site, touch.bank, alarm.table, alarm.column, rack, touch.first)
    if p is None:
        return touch.first
    span = round(alarm.for_s * 1e6)
    rows = store.rows(touch.site, touch.bank, alarm.table, (alarm.column,), p - span, p)
    ts, values = rows.series(alarm.column, rack, p - span, p)
    states = classify(alarm, values)
    ts, states = ts[states != UNKNOWN], states[states != UNKNOWN]
    if not states.size or states[-1] != RAISE:
        return touch.first
    other = np.flatnonzero(states != RAISE)
    return int(ts[other[-1] + 1]) if other.size else int(ts[0])


def _read(store: Store, touch: BankTouch, table: str, plans: list[_Plan]) -> Rows:
    """The table's rows from the earliest start to the latest stop, searching the stops that
    are not known: the first CLEAR frame at or after the batch's last poll."""
    site, bank, b = touch.site, touch.bank, touch.last
    columns = tuple(sorted({p.alarm.column for p in plans}))
    parts = [store.rows(site, bank, table, columns, min(p.start for p in plans), b)]
    _found(plans, parts[-1], b)
    end: int | None = None
    pos, span = b, FORWARD_SPAN_US
    while True:
        known = [p.stop for p in plans if p.stop is not None and p.stop != _INF]
        if len(known) < len(plans) and end is None:
            end = store.last_ts(site, bank, table, b) or b     # the data's last poll
        target = max(known + ([end] if len(known) < len(plans) else []), default=b)
        if pos >= target:
            break
        hi = int(min(pos + span, target))
        parts.append(store.rows(site, bank, table, columns, pos + 1, hi))
        _found(plans, parts[-1], b)
        pos, span = hi, span * 2
    for p in plans:
        if p.stop is None:
            p.stop = _INF                # no CLEAR frame after the batch: up to the end
    return Rows.concat(parts)


def _found(plans: list[_Plan], rows: Rows, b: int) -> None:
    """Set the stop of each plan still searching whose first CLEAR at or after b is in rows."""
    for p in plans:
        if p.stop is not None:
            continue
        ts, values = rows.series(p.alarm.column, p.rack, b, _INF)
        clear = np.flatnonzero(classify(p.alarm, values) == CLEAR)
        if clear.size:
            p.stop = int(ts[clear[0]])
