"""The window against the derivation over all rows, for every kind of alarm (wide_map.py),
several banks and racks, gaps and failed blocks: after every batch of any delivery (shuffled,
duplicated, batches of any size, late frames, writers whose windows run in any order after
their rows were stored) the stored episodes are those of all the rows at once. An alarm
without `for` never loses an episode and raises each once (the part of an episode holding the
poll it was announced at keeps it); live delivery raises each episode of any alarm once; rows
rewritten (`ess redecode --map`) give the episodes of the rows as they now are.

A hunt: ESS_EVENTS_EXAMPLES=3000 python -m pytest tests/events/test_episodes_wide.py
"""

from __future__ import annotations

import os
from dataclasses import replace

from events_support import MemoryStore, expected, stored
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wide_map import BANKS, I16, U16, WIDE, wide_frame

NO_FOR = {a.name for a in WIDE.alarms if not a.for_s}
SAME = "same"                    # a block as in the bank's previous poll: values that last
_BLOCKS = {
    "S": st.tuples(st.sampled_from([0, 0, 1, 2, U16]), st.sampled_from([0, 1, 1, U16]),
                   st.sampled_from([0, 2, 8, 10, 0, U16]), st.sampled_from([0, 1, 4, 5])),
    "T": st.tuples(st.sampled_from([400, 470, 520, 530, I16]),
                   st.sampled_from([5, 12, 16, 18, 25, I16])),
    "R": st.tuples(*[st.sampled_from([0, 1, 1, U16])] * 3,
                   *[st.sampled_from([20, 26, 28, 31, I16])] * 3)}
_STEP = st.tuples(st.sampled_from([1, 1, 1, 1, 2, 3, 4, 7, 40]),     # half-seconds: gaps
                  *(st.one_of(st.just(SAME), st.none(), s) for s in _BLOCKS.values()))
_BANKS = st.lists(st.lists(_STEP, min_size=1, max_size=24), min_size=1, max_size=len(BANKS))
_SETTINGS = settings(max_examples=int(os.environ.get("ESS_EVENTS_EXAMPLES", "12")),
                     deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _frames(banks: list) -> list:
    out = []
    for (site, bank), steps in zip(BANKS, banks):
        t, prev = 0, dict.fromkeys(_BLOCKS)
        for dt, *blocks in steps:
            t += dt
            prev = {n: prev[n] if b == SAME else b for n, b in zip(_BLOCKS, blocks)}
            out.append(wide_frame(site, bank, t, prev))
    return out


def _check_end(store: MemoryStore, live: bool = False) -> None:
    assert stored(store) == expected(store)
    for e in stored(store):
        if e.alarm in NO_FOR or live:
            mine = [r for r in store.inserted if (r.site, r.bank, r.key) == (e.site, e.bank, e.key)
                    and e.since <= r.raised <= e.end]
            assert len(mine) == 1, (e, mine)
    assert not [e for e in store.deleted if e.alarm in NO_FOR or live]


@_SETTINGS
@given(banks=_BANKS, data=st.data())
def test_shuffled_duplicated_batches(banks, data):
    frames = _frames(banks)
    order = list(data.draw(st.permutations(frames)))
    for f in data.draw(st.lists(st.sampled_from(frames), max_size=8)):
        order.insert(data.draw(st.integers(0, len(order))), f)
    store = MemoryStore(WIDE)
    while order:
        n = data.draw(st.integers(1, 8))
        store.write(order[:n])
        order = order[n:]
        assert stored(store) == expected(store)
    _check_end(store)


@_SETTINGS
@given(banks=_BANKS, data=st.data())
def test_live_with_some_late_frames(banks, data):
    frames = sorted(_frames(banks), key=lambda f: f.poll_start_us)
    late = data.draw(st.lists(st.integers(0, len(frames) - 1), unique=True, max_size=4))
    order = [f for i, f in enumerate(frames) if i not in late]
    for i in late:
        order.insert(data.draw(st.integers(min(i, len(order)), len(order))), frames[i])
    store = MemoryStore(WIDE)
    while order:
        n = data.draw(st.integers(1, 3))
        store.write(order[:n])
        order = order[n:]
        assert stored(store) == expected(store)
    _check_end(store, live=not late)


@_SETTINGS
@given(banks=_BANKS, data=st.data())
def test_concurrent_writers(banks, data):
    """Rows stored (with the lock step) by several writers whose windows run later, in any
    order: once every window has run, the episodes of all the rows."""
    frames = _frames(banks)
    order = list(data.draw(st.permutations(frames)))
    order += data.draw(st.lists(st.sampled_from(frames), max_size=5))
    store, waiting = MemoryStore(WIDE), []
    while order or waiting:
        if order and (not waiting or data.draw(st.booleans())):
            n = data.draw(st.integers(1, 6))
            waiting.append(store.commit(order[:n]))
            order = order[n:]
        else:
            store.maintain(waiting.pop(data.draw(st.integers(0, len(waiting) - 1))))
            if not waiting:
                assert stored(store) == expected(store)
    _check_end(store)


@_SETTINGS
@given(banks=_BANKS, values=_BANKS, data=st.data())
def test_rewritten_rows(banks, values, data):
    """`ess redecode --map`: the stored rows rewritten with other values (NULLs too), in poll
    order or shuffled, in batches: after each, the episodes of the rows as they now are."""
    frames = _frames(banks)
    store = MemoryStore(WIDE)
    store.write(frames)
    polls = {(f.site_id, f.bank_id, f.seq): f for f in frames}
    new = [replace(f, poll_start_us=g.poll_start_us, poll_end_us=g.poll_end_us)
           for f in _frames(values) if (g := polls.get((f.site_id, f.bank_id, f.seq)))]
    order = list(data.draw(st.permutations(new))) if data.draw(st.booleans()) else new
    while order:
        n = data.draw(st.integers(1, 8))
        store.write(order[:n], rewrite=True)
        order = order[n:]
        assert stored(store) == expected(store)
