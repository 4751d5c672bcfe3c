"""The two ends of a key's window (window.py): where a pending condition began before the
batch (`onsets`), and the poll past the batch where the derivation meets the stored episodes
(`converge`), after which nothing the batch brought can change anything."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..regmap.model import Alarm
from .episodes import Episode, derive
from .states import RAISE, UNKNOWN, BankTouch, classify

LOOKBACK_SLACK_US = 5_000_000    # the lookback read: `for` plus this before the batch
_INF = float("inf")


@dataclass
class Plan:
    """One alarm key's window: its start, the episode active there, and once derived, where it
    met the stored episodes (`stop`; inf: the end of the data) and the episodes up to there."""

    alarm: Alarm
    rack: int | None
    start: int
    state: Episode | None          # the episode active at `start`, continued
    lookback: bool = False         # a `for` alarm raising in the batch: find a pending start
    stop: float | None = None
    episodes: list[Episode] = field(default_factory=list)


def _within(episodes: list[Episode], t: np.ndarray, pending: bool = False) -> np.ndarray:
    """Per poll time in t: is one of the (sorted, disjoint) episodes active there (raised at or
    before it, cleared after it), or with `pending`, pending there (since at or before it,
    raised after it)?"""
    out = np.zeros(t.size, dtype=bool)
    if not episodes or not t.size:
        return out
    lo = np.array([e.since if pending else e.raised for e in episodes], dtype=np.int64)
    hi = np.array([e.raised if pending else e.end for e in episodes], dtype=np.float64)
    i = np.searchsorted(lo, t, side="right") - 1
    ok = i >= 0
    out[ok] = t[ok] < hi[i[ok]]
    return out


def converge(p: Plan, touch: BankTouch, rows, old: list[Episode], end: int,
             last: bool = False) -> None:
    """Derive p's episodes over the rows read (up to `end`) and find the first known poll at or
    after the batch's last where the derived and the stored states agree: both active (the
    derived episode then ends as the stored one does) or both inactive on a poll that does not
    raise (nothing pending in either: no stored episode's since..raised spans it). Sets p.stop
    and p.episodes when found; `last` (no rows after `end`): the derivation runs to the end."""
    ts, values = rows.series(p.alarm.column, p.rack, p.start, end)
    new = derive(p.alarm, (touch.site, touch.bank, p.rack), ts, values, p.state)
    if last:
        p.stop, p.episodes = _INF, new
        return
    states = classify(p.alarm, values)
    mask = (states != UNKNOWN) & (ts >= touch.last)
    t, st = ts[mask], states[mask]
    old = sorted(old, key=lambda e: e.since)
    new_on, old_on = _within(new, t), _within(old, t)
    # inactive on both sides: the stored episodes must not be pending there either (a stored
    # `for` episode whose pending run the batch's own poll at t now ends)
    idle = ~new_on & ~old_on & ~_within(old, t, pending=True) & (st != RAISE)
    hit = np.flatnonzero((new_on & old_on) | idle)
    if not hit.size:
        return
    at = int(t[hit[0]])
    kept = [e for e in new if e.since <= at]
    if new_on[hit[0]]:
        same = next(e for e in old if e.raised <= at < e.end)
        kept[-1] = replace(kept[-1], cleared=same.cleared, cleared_value=same.cleared_value)
    p.stop, p.episodes = at, kept


def onsets(store, touch: BankTouch, table: str, plans: list[Plan]) -> None:
    """Move the start of each plan that looks back to the start of the pending condition (a
    run of raising polls) that ends just before the batch, if there is one. Such a run is
    nearly always shorter than `for` (longer, it would have raised an episode across the
    batch's start), so one read of `for` and a few seconds before the batch finds it. Not
    always: another writer's rows may be stored whose window has not run yet (it waits for the
    bank's lock), so while the run reaches the first poll read, the known poll before it is
    looked up and more read (as after a gap before the batch)."""
    need = [p for p in plans if p.lookback]
    if not need:
        return
    a = touch.first
    span = max(round(p.alarm.for_s * 1e6) for p in need)
    lo = a - span - LOOKBACK_SLACK_US
    columns = tuple(sorted({p.alarm.column for p in need}))
    rows = store.rows(touch.site, touch.bank, table, columns, lo, a - 1)
    for p in need:
        start = _run_start(store, touch, table, p, *_known(p, rows, lo, a - 1), a)
        if start is not None:
            p.start = start


def _run_start(store, touch: BankTouch, table: str, p: Plan, ts: np.ndarray,
               st: np.ndarray, before: int) -> int | None:
    """The first poll of the run of raising polls that ends at the last known poll before
    `before` (ts, st: the known polls read, up to it), or None when that poll does not raise.
    Reads further back while the run reaches the first poll read, each read twice as long."""
    span, start = round(p.alarm.for_s * 1e6) + LOOKBACK_SLACK_US, None
    while True:
        if not ts.size:                 # nothing known read: from the last known poll back
            last = store.last_known(touch.site, touch.bank, table, p.alarm.column, p.rack,
                                    before)
            if last is None:
                return start
            more = store.rows(touch.site, touch.bank, table, (p.alarm.column,), last - span,
                              last)
            ts, st = _known(p, more, last - span, last)
            span *= 2
            if not ts.size:             # not a value the alarm can read (NaN): stop there
                return start
        if st[-1] != RAISE:
            return start
        other = np.flatnonzero(st != RAISE)
        if other.size:
            return int(ts[other[-1] + 1])
        start = before = int(ts[0])     # the run goes back at least to here
        ts = ts[:0]


def _known(p: Plan, rows, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """A key's known (not NULL) poll times and states in [lo, hi]."""
    ts, values = rows.series(p.alarm.column, p.rack, lo, hi)
    states = classify(p.alarm, values)
    keep = states != UNKNOWN
    return ts[keep], states[keep]
