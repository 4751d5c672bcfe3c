"""Episodes of one alarm as a pure function of its stored frames (docs/events.md).

Frames whose value is NULL are left out. Over the rest, sorted by poll time:
- inactive: a RAISE frame starts the condition (`since`); without `for` it raises the alarm;
- pending (`for` > 0): the alarm is raised at the first RAISE frame at least `for` after
  `since`, provided every frame in between raised too; a CLEAR or HOLD frame ends the pending
  condition without an episode;
- active: only a CLEAR frame clears it (`cleared`, `cleared_value`); RAISE and HOLD frames,
  gaps and NULLs keep it active.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..regmap.model import Alarm
from .states import CLEAR, RAISE, UNKNOWN, classify


@dataclass(frozen=True)
class Episode:
    """One episode of one alarm at one bank (and rack). Times are µs since the epoch."""

    site: str
    bank: int
    rack: int | None
    alarm: str
    severity: str
    since: int                  # first frame of the condition
    raised: int                 # the frame at which the alarm was raised (= since without `for`)
    raised_value: float
    cleared: int | None = None  # the frame that showed it inactive; None while active
    cleared_value: float | None = None
    # a stored episode's `raised` when it was inserted (its log line); not derived, not compared
    announced: int | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> tuple[str, int | None]:
        return (self.alarm, self.rack)

    @property
    def end(self) -> float:
        """`cleared`, or infinity while active."""
        return float("inf") if self.cleared is None else self.cleared

    def overlaps(self, lo: float, hi: float) -> bool:
        """True when [since, cleared] meets [lo, hi] (an active episode reaches to infinity)."""
        return self.since <= hi and self.end >= lo


def derive(alarm: Alarm, ident: tuple[str, int, int | None], ts: np.ndarray,
           values: np.ndarray, start: Episode | None = None) -> list[Episode]:
    """The episodes of `alarm` over frames sorted by `ts` (int µs) with `values` (NaN = NULL).

    `ident` is (site, bank, rack). `start`, an episode active before the first frame, is
    continued: the first episode returned is it, cleared or still active (a clear it had is
    derived again: it may be the frame rewritten).
    """
    states = classify(alarm, values)
    keep = states != UNKNOWN
    ts, values, states = ts[keep], values[keep], states[keep]
    site, bank, rack = ident
    out: list[Episode] = []
    active = None if start is None else replace(start, cleared=None, cleared_value=None)
    bounds = np.flatnonzero(np.diff(states)) + 1 if states.size else np.empty(0, np.int64)
    for i0, i1 in zip(np.r_[0, bounds].tolist(), np.r_[bounds, states.size].tolist()):
        if i0 == i1:
            continue
        state = states[i0]
        if active is not None:
            if state == CLEAR:
                out.append(replace(active, cleared=int(ts[i0]),
                                   cleared_value=float(values[i0])))
                active = None
            continue
        if state != RAISE:
            continue
        # a run of RAISE frames: raised at its first frame at least `for` after its start
        j = i0 + int(np.searchsorted(ts[i0:i1], ts[i0] + round(alarm.for_s * 1e6)))
        if j < i1:
            active = Episode(site, bank, rack, alarm.name, alarm.severity, int(ts[i0]),
                             int(ts[j]), float(values[j]))
    if active is not None:
        out.append(active)
    return out


def diff(old: list[Episode], new: list[Episode]) -> tuple[list[Episode],
                                                           list[tuple[Episode, Episode]],
                                                           list[Episode]]:
    """How to turn one key's stored episodes into the derived ones: (delete, update, insert).

    Both lists are sorted and disjoint. A derived episode that overlaps a stored one in time is
    that episode (updated, never raised again): first the one holding the poll the stored
    episode was announced at (a late frame may have moved its start earlier, and a later one
    split it there: the part announced keeps it), else the first one it overlaps. A derived
    episode paired with none is new; a stored one paired with none is gone (a late frame showed
    the condition did not hold for `for`).
    """
    pair: dict[int, int] = {}                     # stored -> derived
    for by_announced in (True, False):
        for i, o in enumerate(old):
            if i in pair:
                continue
            j = next((j for j, n in enumerate(new) if j not in pair.values()
                      and n.overlaps(o.since, o.end)
                      and (not by_announced or (o.announced is not None
                                                and n.since <= o.announced <= n.end))), None)
            if j is not None:
                pair[i] = j
    delete = [o for i, o in enumerate(old) if i not in pair]
    update = [(old[i], new[j]) for i, j in sorted(pair.items()) if old[i] != new[j]]
    return delete, update, [n for j, n in enumerate(new) if j not in pair.values()]
