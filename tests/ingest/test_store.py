"""Frames published once or several times end up as exactly one row per key in both sinks."""

from __future__ import annotations

from .helpers import (count_rows, expected_rows, log_events, make_frames, stored_rows, wait_for)


def test_published_frames_equal_decoder_output_in_both_sinks(stack, pipe):
    messages = [make_frames("exact", 1, start=0)]                       # 1 frame
    messages.append(make_frames("exact", 10, start=1))                  # 10 frames
    messages.append(make_frames("exact", 5, start=0, bank=2))           # another bank
    for frames in messages:
        pipe.publish(frames)
    frames = [f for m in messages for f in m]
    want = expected_rows(frames)
    n = sum(len(t) for t in want.values())
    assert n == 16 * 11
    for sink, dsn in stack.dsn.items():
        wait_for(lambda d=dsn: count_rows(d, "exact") == n, 30, f"{n} rows in {sink}")
        assert stored_rows(dsn, "exact") == want, sink


def test_same_message_three_times_is_stored_once(stack, pipe):
    frames = make_frames("dup", 3)
    ids = [pipe.publish(frames) for _ in range(3)]   # three deliveries of the same frames
    n = 3 * 11
    fn = stack.functions["main"]

    def all_handled():
        return sum(len(log_events(fn.log_path, message_id=i, stage="store")) for i in ids) >= 3

    for sink, dsn in stack.dsn.items():
        wait_for(lambda d=dsn: count_rows(d, "dup") == n, 30, f"{n} rows in {sink}")
    wait_for(all_handled, 30, "three store events")
    stores = [e for i in ids for e in log_events(fn.log_path, message_id=i, stage="store")]
    assert sorted(e["duplicates"] for e in stores) == [0, n, n]
    assert sum(e["inserted"] for e in stores) == n
    assert all(e["sink"] == "main" and e["site"] == "dup" and e["frames"] == 3 and
               e["rows"] == n and set(e["latency_ms"]) == {"p50", "max"} for e in stores)
    assert stored_rows(stack.dsn["main"], "dup") == expected_rows(frames)
