"""Per-frame alarm states, vectorised over decoded rows, and what a batch brings to each bank.

A value is RAISE (the alarm's condition holds), CLEAR (it does not, past any hysteresis), HOLD
(between a threshold and its hysteresis: keeps an active alarm active, ends a pending one) or
UNKNOWN (NULL: a failed block or a missing value, which changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..regmap.model import Alarm, RegisterMap

RAISE, CLEAR, HOLD, UNKNOWN = 1, 0, 2, -1
Key = tuple[str, int | None]          # (alarm name, rack id or None)


def classify(alarm: Alarm, values: np.ndarray) -> np.ndarray:
    """The state of each value (float64, NaN for NULL) as int8: RAISE, CLEAR, HOLD, UNKNOWN."""
    v = np.asarray(values, dtype=np.float64)
    known = ~np.isnan(v)
    with np.errstate(invalid="ignore"):
        if alarm.above is not None:
            up, down = v > alarm.above, v <= alarm.above - alarm.hysteresis
        elif alarm.below is not None:
            up, down = v < alarm.below, v >= alarm.below + alarm.hysteresis
        elif alarm.bit is not None:
            up = ((np.where(known, v, 0).astype(np.int64) >> alarm.bit) & 1).astype(bool)
            down = ~up
        else:
            up, down = v != 0, v == 0
    out = np.full(v.shape, UNKNOWN, dtype=np.int8)
    out[known & ~down] = HOLD
    out[known & down] = CLEAR
    out[known & up] = RAISE
    return out


@dataclass(frozen=True)
class _TablePlan:
    """Per map and table: its alarms, the plain `not 0` ones' columns (one numpy pass), the
    others with their column."""

    alarms: tuple[Alarm, ...]
    plain: np.ndarray                 # positions in `alarms`
    plain_cols: np.ndarray            # their columns in the table's values
    others: tuple[tuple[int, Alarm, int], ...]   # (position, alarm, column)


@lru_cache(maxsize=256)
def _table_plan(regmap: RegisterMap, table: str, columns: tuple[str, ...]) -> _TablePlan:
    alarms = regmap.table_alarms(table)
    plain = [j for j, a in enumerate(alarms) if not a.is_threshold and a.bit is None]
    return _TablePlan(alarms, np.array(plain, dtype=np.intp),
                      np.array([columns.index(alarms[j].column) for j in plain], dtype=np.intp),
                      tuple((j, a, columns.index(a.column)) for j, a in enumerate(alarms)
                            if j not in plain))


def classify_table(regmap: RegisterMap, table: str, columns: tuple[str, ...],
                   values: np.ndarray) -> tuple[tuple[Alarm, ...], np.ndarray]:
    """The table's alarms and their states (rows x alarms)."""
    plan = _table_plan(regmap, table, columns)
    out = np.empty((values.shape[0], len(plan.alarms)), dtype=np.int8)
    if plan.plain.size:
        v = values[:, plan.plain_cols]
        out[:, plan.plain] = np.where(np.isnan(v), UNKNOWN, (v != 0).astype(np.int8))
    for j, alarm, col in plan.others:
        out[:, j] = classify(alarm, values[:, col])
    return plan.alarms, out


@dataclass
class _Part:
    """One table's states for one bank's rows of a batch."""

    alarms: tuple[Alarm, ...]
    states: np.ndarray                # rows x alarms
    rack: np.ndarray | None           # per row (rack table)


@dataclass
class BankTouch:
    """What one batch brings to one bank: its poll range and its rows' alarm states."""

    site: str
    bank: int
    first: int                        # first poll start in the batch (µs since the epoch)
    last: int                         # last poll start
    parts: list[_Part] = field(default_factory=list)
    # its rows replace stored ones (`ess redecode --map`): a NULL or any value may change them
    rewrite: bool = False
    _counts: dict[Key, tuple[int, int, int]] | None = field(default=None, repr=False)
    _steady: set[Key] | None = field(default=None, repr=False)
    _raising: set[Key] | None = field(default=None, repr=False)

    def raising(self) -> set[Key]:
        """The alarm keys with a RAISE value in the batch (usually none)."""
        if self._raising is None:
            self._raising = self._keys(lambda s: s == RAISE)
        return self._raising

    def steady(self) -> set[Key]:
        """The keys whose values raise or hold and never clear in the batch: an episode active
        across the whole batch stays as it is (the lock function leaves such episodes out)."""
        if self._steady is None:
            self._steady = set()
            for p in self.parts:
                if not (p.states >= RAISE).any():      # RAISE and HOLD are the two above 0
                    continue
                for rack, states in _groups(p):
                    on = ((states == RAISE) | (states == HOLD)).any(axis=0)
                    off = (states == CLEAR).any(axis=0)
                    self._steady.update((p.alarms[j].name, rack)
                                        for j in np.flatnonzero(on & ~off).tolist())
        return self._steady

    def keys(self) -> set[Key]:
        """Every alarm key with a row in the batch (known or NULL)."""
        return self._keys(lambda s: np.ones(s.shape, dtype=bool))

    def _keys(self, test) -> set[Key]:
        out: set[Key] = set()
        for p in self.parts:
            hit = test(p.states)
            if not hit.any():
                continue
            for rack, h in _groups(p, hit):
                out.update((p.alarms[j].name, rack)
                           for j in np.flatnonzero(h.any(axis=0)).tolist())
        return out

    def counts(self, key: Key) -> tuple[int, int, int]:
        """How many of the batch's values of `key` raise, clear and hold."""
        if self._counts is None:
            self._counts = {}
            for p in self.parts:
                self._counts.update(_part_counts(p))
        return self._counts.get(key, (0, 0, 0))


def _groups(p: _Part, rows: np.ndarray | None = None) -> list[tuple[int | None, np.ndarray]]:
    """A part's states (or `rows`, an array of the part's shape) per rack (one group without
    racks)."""
    a = p.states if rows is None else rows
    return [(None, a)] if p.rack is None else [
        (int(r), a[p.rack == r]) for r in np.unique(p.rack).tolist()]


def _part_counts(p: _Part) -> dict[Key, tuple[int, int, int]]:
    """Raise, clear and hold counts per alarm (and rack) of one part, in a few numpy passes."""
    out = {}
    for rack, states in _groups(p):
        sums = [(states == s).sum(axis=0).tolist() for s in (RAISE, CLEAR, HOLD)]
        for a, n in zip(p.alarms, zip(*sums)):
            out[(a.name, rack)] = n
    return out


def touches(regmap: RegisterMap, frames, tables,
            rewrite: bool = False) -> dict[tuple[str, int], BankTouch]:
    """Summarise a batch per bank: `tables` is the decoder's TableBatch list for `frames`;
    `rewrite`: its rows replace stored ones.

    Empty when the map declares no alarms. A bank is there even when its rows hold no alarm
    value (its frames all failed, say): the window then finds nothing to change.
    """
    if not regmap.alarms:
        return {}
    code: dict[tuple[str, int], int] = {}
    owner = np.fromiter((code.setdefault((f.site_id, f.bank_id), len(code)) for f in frames),
                        dtype=np.int64, count=len(frames))
    polls = np.fromiter((f.poll_start_us for f in frames), dtype=np.int64, count=len(frames))
    order = []
    for (site, bank), c in code.items():
        mine = polls if len(code) == 1 else polls[owner == c]
        order.append(BankTouch(site, bank, int(mine.min()), int(mine.max()), rewrite=rewrite))
    for tb in tables:
        if not len(tb) or not regmap.table_alarms(tb.table):
            continue
        alarms, states = classify_table(regmap, tb.table, tb.columns, tb.values)
        row_bank = owner[tb.frame]
        for b, t in enumerate(order):
            rows = np.flatnonzero(row_bank == b) if len(order) > 1 else slice(None)
            t.parts.append(_Part(alarms, states[rows],
                                 tb.rack[rows] if tb.rack is not None else None))
    return {(t.site, t.bank): t for t in order}
