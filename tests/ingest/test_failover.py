"""A sink's database going away loses nothing: its subscription redelivers until it is back.

These tests deliver by pull-and-post (relay.py): the official emulator's own push waits 1000 s
before redelivering a failed push, whatever the retry policy says.
"""

from __future__ import annotations

import threading
import time

from .helpers import count_rows, expected_rows, log_events, make_frames, stored_rows, wait_for


def _publisher(pipe, site: str, messages: int, per_message: int, interval: float):
    sent: list = []

    def run():
        for i in range(messages):
            frames = make_frames(site, per_message, start=i * per_message)
            pipe.publish(frames)
            sent.extend(frames)
            time.sleep(interval)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, sent


def test_replica_down_main_keeps_ingesting_and_replica_catches_up(stack, relay_pipe):
    replica = stack.clusters["replica"]
    replica.stop()
    try:
        frames = make_frames("replica", 20)
        for i in range(0, 20, 2):
            relay_pipe.publish(frames[i:i + 2])
        n = 20 * 11
        wait_for(lambda: count_rows(stack.dsn["main"], "replica") == n, 30, "main ingesting")
        wait_for(lambda: len(log_events(stack.functions["replica"].log_path, stage="store",
                                        transient=True, site="replica")) >= 30, 30,
                 "replica failing each message several times (1 s backoff)")
    finally:
        replica.start()
    wait_for(lambda: count_rows(stack.dsn["replica"], "replica") == n, 60, "replica catching up")
    want = expected_rows(frames)
    assert stored_rows(stack.dsn["main"], "replica") == want
    assert stored_rows(stack.dsn["replica"], "replica") == want


def test_main_restarted_mid_stream_loses_and_duplicates_nothing(stack, relay_pipe):
    thread, sent = _publisher(relay_pipe, "restart", messages=30, per_message=2, interval=0.1)
    wait_for(lambda: count_rows(stack.dsn["main"], "restart") > 0, 30, "first rows in main")
    stack.clusters["main"].restart()
    thread.join(30)
    failed = log_events(stack.functions["main"].log_path, stage="store", site="restart",
                        transient=True)
    assert failed, "the restart should have failed some deliveries"
    n = 60 * 11
    for sink, dsn in stack.dsn.items():
        wait_for(lambda d=dsn: count_rows(d, "restart") == n, 60, f"all rows in {sink}")
    want = expected_rows(sent)
    assert stored_rows(stack.dsn["main"], "restart") == want   # asserts one row per key too
    assert stored_rows(stack.dsn["replica"], "restart") == want
