"""Per-frame alarm states, vectorised over decoded rows, and what a batch brings to each bank.

A value is RAISE (the alarm's condition holds), CLEAR (it does not, past any hysteresis), HOLD
(between a threshold and its hysteresis: keeps an active alarm active, ends a pending one) or
UNKNOWN (NULL: a failed block or a missing value, which changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def classify_table(alarms: tuple[Alarm, ...], columns: tuple[str, ...],
                   values: np.ndarray) -> np.ndarray:
    """States of every alarm of a table (rows x alarms): the plain `not 0` alarms in one pass."""
    out = np.empty((values.shape[0], len(alarms)), dtype=np.int8)
    plain = [j for j, a in enumerate(alarms) if not a.is_threshold and a.bit is None]
    if plain:
        v = values[:, [columns.index(alarms[j].column) for j in plain]]
        out[:, plain] = np.where(np.isnan(v), UNKNOWN, (v != 0).astype(np.int8))
    for j, a in enumerate(alarms):
        if a.is_threshold or a.bit is not None:
            out[:, j] = classify(a, values[:, columns.index(a.column)])
    return out


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

    def raising(self) -> set[Key]:
        """The alarm keys with a RAISE value in the batch (usually none)."""
        out: set[Key] = set()
        for p in self.parts:
            rows, cols = np.nonzero(p.states == RAISE)
            for r, c in zip(rows.tolist(), cols.tolist()):
                out.add((p.alarms[c].name, int(p.rack[r]) if p.rack is not None else None))
        return out

    def counts(self, key: Key) -> tuple[int, int, int]:
        """How many of the batch's values of `key` raise, clear and hold."""
        name, rack = key
        for p in self.parts:
            for j, a in enumerate(p.alarms):
                if a.name != name:
                    continue
                s = p.states[:, j] if p.rack is None else p.states[p.rack == rack, j]
                return (int((s == RAISE).sum()), int((s == CLEAR).sum()),
                        int((s == HOLD).sum()))
        return 0, 0, 0


def touches(regmap: RegisterMap, frames, tables) -> dict[tuple[str, int], BankTouch]:
    """Summarise a batch per bank: `tables` is the decoder's TableBatch list for `frames`.

    Empty when the map declares no alarms. A bank whose rows hold no alarm value still gets its
    poll range (docs/events.md: the range alone can matter).
    """
    if not regmap.alarms:
        return {}
    banks: dict[tuple[str, int], BankTouch] = {}
    code: dict[tuple[str, int], int] = {}
    owner = np.empty(len(frames), dtype=np.int64)
    for i, f in enumerate(frames):
        key = (f.site_id, f.bank_id)
        t = banks.get(key)
        if t is None:
            t = banks[key] = BankTouch(f.site_id, f.bank_id, f.poll_start_us, f.poll_start_us)
            code[key] = len(code)
        t.first, t.last = min(t.first, f.poll_start_us), max(t.last, f.poll_start_us)
        owner[i] = code[key]
    order = list(banks.values())
    for tb in tables:
        alarms = regmap.table_alarms(tb.table)
        if not alarms or not len(tb):
            continue
        states = classify_table(alarms, tb.columns, tb.values)
        row_bank = owner[tb.frame]
        for b, t in enumerate(order):
            rows = np.flatnonzero(row_bank == b) if len(order) > 1 else slice(None)
            t.parts.append(_Part(alarms, states[rows],
                                 tb.rack[rows] if tb.rack is not None else None))
    return banks
