"""Episodes as a pure function of the stored frames, and the window that maintains them:
delivered in any order, duplicated, in any batches, the stored episodes are those of all the
frames at once (hypothesis), and each is raised (inserted) exactly once."""

from __future__ import annotations

import numpy as np
from ess.events.episodes import derive
from ess.events.states import CLEAR, HOLD, RAISE, UNKNOWN, classify
from events_support import MAP, NULL16, NULL_T, T0, MemoryStore, expected, frame, stored
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FLAG, TEMP, RACK_FLAG = (next(a for a in MAP.alarms if a.name == n)
                         for n in ("flag_on", "temp_high", "rack_flag_on"))
S = 1_000_000
NAN = float("nan")


def _derive(alarm, seconds: list[int], values: list[float], start=None):
    return [(e.since // S, e.raised // S, e.raised_value,
             None if e.cleared is None else e.cleared // S, e.cleared_value)
            for e in derive(alarm, ("s", 1, None), np.array(seconds, np.int64) * S,
                            np.array(values, np.float64), start)]


def test_classify_bits_thresholds_and_nulls():
    assert classify(FLAG, np.array([0, 1, 3, NAN])).tolist() == [CLEAR, RAISE, RAISE, UNKNOWN]
    assert classify(TEMP, np.array([50, 50.1, 45, 45.1, NAN])).tolist() == [
        HOLD, RAISE, CLEAR, HOLD, UNKNOWN]
    bit = MAP.alarms[0].__class__("b", "fault", "bank", "flag", bit=2)
    assert classify(bit, np.array([4, 3, -1, 0])).tolist() == [RAISE, CLEAR, RAISE, CLEAR]


def test_a_bit_alarm_stays_active_across_gaps_and_nulls_and_clears_on_zero():
    got = _derive(FLAG, [0, 1, 2, 10, 11, 12, 13], [0, 1, NAN, 1, NAN, 0, 1])
    assert got == [(1, 1, 1.0, 12, 0.0), (13, 13, 1.0, None, None)]


def test_a_threshold_raises_after_for_and_clears_past_the_hysteresis():
    # 52 raises; 3 s later it is raised; 47 is within the hysteresis (holds); 45 clears
    got = _derive(TEMP, [0, 1, 2, 3, 4, 5, 6, 7], [40, 52, 53, 51, 52, 47, 46, 45])
    assert got == [(1, 4, 52.0, 7, 45.0)]


def test_a_pending_threshold_ends_on_a_hold_or_clear_value():
    assert _derive(TEMP, [0, 1, 2, 3, 4, 5], [52, 53, 49, 52, 51, 53]) == []
    # a gap does not end it: 52 at 0 and 51 at 10 (nothing in between) raise at 10
    assert _derive(TEMP, [0, 10, 11], [52, 51, 45]) == [(0, 10, 51.0, 11, 45.0)]


def test_a_started_episode_is_continued():
    start = derive(FLAG, ("s", 1, None), np.array([5 * S]), np.array([1.0]))[0]
    assert _derive(FLAG, [8, 9, 10], [2, 0, 1], start) == [(5, 5, 1.0, 9, 0.0),
                                                         (10, 10, 1.0, None, None)]


# frames: second -> registers [flag, temp, rack 1, rack 2] (None: the block failed)
_REGS = st.tuples(st.sampled_from([0, 0, 1, 2, NULL16]),
                  st.sampled_from([400, 470, 520, 530, NULL_T]),
                  st.sampled_from([0, 0, 1, NULL16]), st.sampled_from([0, 1, 1, NULL16]))
_FRAMES = st.dictionaries(st.integers(0, 40), st.one_of(st.none(), _REGS), min_size=1,
                          max_size=25)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=_FRAMES, data=st.data())
def test_any_delivery_gives_the_episodes_of_all_frames(frames, data):
    """Frames in random batches, shuffled, some delivered twice: the stored episodes equal the
    derivation over all frames; with no `for`, each final episode was inserted exactly once."""
    all_frames = [frame(t, None if r is None else list(r)) for t, r in sorted(frames.items())]
    order = data.draw(st.permutations(all_frames))
    again = data.draw(st.lists(st.sampled_from(all_frames), max_size=6))
    deliveries = list(order) + again
    store = MemoryStore()
    while deliveries:
        n = data.draw(st.integers(1, 3))
        store.write(deliveries[:n])
        deliveries = deliveries[n:]
    got = sorted(store.events, key=lambda e: (e.alarm, e.rack or 0, e.since))
    assert got == expected(store)
    plain = [e for e in got if e.alarm == "flag_on"]
    assert len([e for e in store.inserted if e.alarm == "flag_on"]) == len(plain)


@settings(max_examples=100, deadline=None)
@given(frames=_FRAMES)
def test_in_order_delivery_one_frame_at_a_time_raises_each_episode_once(frames):
    """Live delivery (one frame per batch, in poll order): every episode is inserted once and
    never changes its raise afterwards (no retraction, no second raise)."""
    store = MemoryStore()
    for t, r in sorted(frames.items()):
        store.write([frame(t, None if r is None else list(r))])
    assert sorted(store.events, key=lambda e: (e.alarm, e.rack or 0, e.since)) == expected(store)
    final = {(e.alarm, e.rack, e.since, e.raised) for e in store.events}
    raised = [(e.alarm, e.rack, e.since, e.raised) for e in store.inserted]
    assert sorted(raised) == sorted(final)


def test_a_late_clear_inside_a_stored_pending_run_moves_the_episode_to_the_next_run():
    """rack 2 (`for` 2 s) raises at 1, 3, 5 with 2 missing: stored since 1, raised 3. The late
    clear at 2 ends that run; the next run (3, 5) raises at 5. The window must not stop at 2,
    where the stored episode is pending, not idle."""
    regs = {0: None, 1: [0, 400, 0, 1], 2: [0, 400, 0, 0], 3: [0, 400, 0, 1], 5: [0, 400, 0, 1]}
    frames = {t: frame(t, r) for t, r in regs.items()}
    store = MemoryStore()
    for batch in ([0], [1, 3, 5], [2]):
        store.write([frames[t] for t in batch])
    got = sorted(store.events, key=lambda e: (e.alarm, e.rack or 0, e.since))
    assert got == expected(store)
    assert [(e.since - T0, e.raised - T0) for e in got if e.rack == 2] == [(3_000_000, 5_000_000)]


def test_a_window_run_while_an_earlier_batch_awaits_its_own_finds_the_whole_pending_run():
    """Concurrent writers: the batch of poll 3 has committed its rows but not yet run its
    window when the batch of poll 20 runs its own. rack 2 (`for` 2 s) raises at 0, 3 and 20:
    raised at 3, since 0. The lookback from 20 must not stop `for` before poll 3 (the run it
    finds there is longer than `for`, its episode not yet stored), else the episode starts at 3
    and the window of poll 3, which then finds an episode starting at its own poll, keeps it."""
    frames = {t: frame(t, [0, 400, 0, 1]) for t in (0, 3, 20)}
    store = MemoryStore()
    store.write([frames[0]])
    late, live = store.commit([frames[3]]), store.commit([frames[20]])
    store.maintain(live)
    store.maintain(late)
    got = [(e.since - T0, e.raised - T0) for e in stored(store) if e.rack == 2]
    assert got == [(0, 3_000_000)]
    assert stored(store) == expected(store)


def test_a_late_clear_splitting_an_extended_episode_raises_only_the_part_never_announced():
    """flag_on raised at 93 (announced); a late 59 extends it (since 59: one run, no clear
    between); a late clear at 92 splits it. The part holding 93 is the episode announced: it
    keeps that identity and is not raised again; 59..92 is the new one."""
    store = MemoryStore()
    raised = [e for t, v in ((93, 1), (59, 1), (92, 0))
              for e in store.write([frame(t, [v, 400, 0, 0])]) if e.alarm == "flag_on"]
    assert stored(store) == expected(store)
    assert [(e.since - T0) // 1_000_000 for e in raised] == [93, 59]


def test_values_rewritten_to_null_re_derive_the_episodes_they_held_or_split():
    """`ess redecode --map` rewrites stored rows; a value rewritten to NULL (the new map knows
    a sentinel) changes episodes although the batch holds no known value: flag_on's raise at 2
    goes, and rack 2's pending run (`for` 2 s) no longer ends at 1, so it raises at 2."""
    store = MemoryStore()
    store.write([frame(t, r) for t, r in ((0, [0, 400, 0, 1]), (1, [0, 400, 0, 0]),
                                          (2, [1, 400, 0, 1]), (3, [0, 400, 0, 1]))])
    assert [e.alarm for e in stored(store)] == ["flag_on"]
    store.write([frame(2, [NULL16, 400, 0, 1])], rewrite=True)      # flag: only a NULL
    assert stored(store) == expected(store) == []
    store.write([frame(1, [0, 400, 0, NULL16])], rewrite=True)      # rack 2: only a NULL
    assert stored(store) == expected(store)
    assert [(e.alarm, (e.since - T0) // 1_000_000) for e in stored(store)] == [
        ("rack_flag_on", 0)]


def test_a_clear_rewritten_to_a_raise_joins_the_two_episodes_it_parted():
    """flag_on 1, 0, 1 at 1, 2, 3: two episodes; the 0 at 2 rewritten to 1 (`ess redecode
    --map`) makes them one, from 1 and still active. The episode continued from before the
    batch is active there: the clear it had at the batch's own poll is the one rewritten."""
    store = MemoryStore()
    store.write([frame(t, [v, 400, 0, 0]) for t, v in ((1, 1), (2, 0), (3, 1))])
    assert len(stored(store)) == 2
    store.write([frame(2, [1, 400, 0, 0])], rewrite=True)
    assert stored(store) == expected(store)
    assert [((e.since - T0) // 1_000_000, e.cleared) for e in stored(store)] == [(1, None)]
