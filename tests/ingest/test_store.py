"""Frames published once or several times end up as exactly one row per key in both sinks."""

from __future__ import annotations

import base64

import requests

from .helpers import (
    attrs,
    body,
    count_rows,
    expected_rows,
    log_events,
    make_frames,
    stored_rows,
    wait_for,
)


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


def test_same_message_delivered_three_times_is_stored_once(stack, pipe):
    frames = make_frames("dup", 3)
    # a redelivery carries the first delivery's publish time: minutes after the polls
    published = frames[-1].poll_end.isoformat().replace("+00:00", "Z")
    message_id = pipe.publish(frames)                   # first delivery: by the emulator
    n = 3 * 11
    for sink, dsn in stack.dsn.items():
        wait_for(lambda d=dsn: count_rows(d, "dup") == n, 30, f"{n} rows in {sink}")
    for sink, fn in stack.functions.items():            # two redeliveries of the same message
        sub = f"projects/{stack.pubsub.project}/subscriptions/{pipe.topic}-{sink}"
        push = {"message": {"data": base64.b64encode(body(frames)).decode(),
                            "attributes": attrs(frames), "messageId": message_id,
                            "publishTime": published}, "subscription": sub}
        for _ in range(2):
            assert requests.post(fn.url, json=push, timeout=30).status_code == 200
        stores = log_events(fn.log_path, message_id=message_id, stage="store")
        assert sorted(e["duplicates"] for e in stores) == [0, n, n], sink
        assert [e["inserted"] for e in stores] == [n, 0, 0]
        assert all(e["sink"] == sink and e["site"] == "dup" and e["frames"] == 3 and
                   e["rows"] == n and set(e["latency_ms"]) == {"p50", "max"} and
                   abs(e["lag_s"] - e["latency_ms"]["max"] / 1000) <= 0.001 for e in stores)
        assert stored_rows(stack.dsn[sink], "dup") == expected_rows(frames)
