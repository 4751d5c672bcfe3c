"""Store-and-forward: a Pub/Sub outage and a `kill -9` of the collector lose no frame."""

from __future__ import annotations

import time

from collector_support import (
    CollectorProcess,
    by_device,
    create_subscription,
    new_topic,
    pull_frames,
    start_simulator,
    write_config,
)
from ess.codec import encode_frame
from ess_collector.config import with_defaults
from ess_local.procs import free_port
from ess_local.pubsub import Emulator

RECONNECT_MAX = with_defaults({})["reconnect"]["max"]      # the schema default (30 s)


def _wait_for(pred, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _started(col: CollectorProcess) -> bool:
    return any(e.get("message", "").startswith("collector starting") for e in col.events())


def _first_arrivals(frames):
    """Frames in arrival order with exact duplicates removed; asserts duplicates are identical."""
    seen: dict[tuple, bytes] = {}
    out = []
    for f in frames:
        key = (f.site_id, f.bank_id, f.seq)
        body = encode_frame(f)
        if key in seen:
            assert seen[key] == body, f"duplicate {key} differs"
            continue
        seen[key] = body
        out.append(f)
    return out


def test_pubsub_outage_then_recovery_delivers_everything_in_order(tmp_path, stack_dir):
    emu = Emulator(free_port(), "outage-test", log_dir=stack_dir).start()
    sim = start_simulator(2, tmp_path)
    col = None
    try:
        topic, sub = new_topic(emu)
        name = topic.rsplit("/", 1)[1]
        col = CollectorProcess(write_config(tmp_path, sim, topic), emu.host,
                               tmp_path / "collector.log").start()
        before = pull_frames(emu, sub, until=lambda fs: len(fs) >= 4, timeout=20)
        emu.stop()                      # publishes retry (ordered) while it is down
        down_at = time.time()
        time.sleep(26)                  # 30 s without Pub/Sub in all, with the 4 s below
        emu.start()
        time.sleep(4)                   # the topic is missing for a while: publishes fail
        emu.admin.create_topic(name)
        create_subscription(emu, name)
        up_at = time.time()
        # replay retries back off up to collector.reconnect.max: the next try may come that
        # long after Pub/Sub is back, then give it time to go through
        _wait_for(lambda: any(e.get("message", "").startswith("publish recovered")
                              for e in col.events()), RECONNECT_MAX + 30, "publish recovery")
        after = pull_frames(emu, sub, timeout=30, until=lambda fs: all(
            any(f.bank_id == b and f.poll_start_us / 1e6 > up_at + 1 for f in fs)
            for b in (1, 2)))
        assert col.terminate() == 0
        after += pull_frames(emu, sub, timeout=10)
    finally:
        if col:
            col.stop()
        sim.stop()
        emu.stop()
    events = col.events()
    assert any(e.get("stage") == "publish" and e.get("severity") == "ERROR" for e in events)
    frames = _first_arrivals([f for f, _ in before] + [f for f, _ in after])
    for bank, fs in by_device(frames).items():
        seqs = [f.seq for f in fs]
        assert seqs == list(range(1, len(seqs) + 1)), f"bank {bank}: {seqs}"
        polls = [f.poll_start_us / 1e6 for f in fs]
        assert any(down_at + 1 < p < up_at - 1 for p in polls), "no frame from the outage"
        assert polls[-1] > up_at
    # everything polled during the outage arrived after recovery, in order per device
    late = by_device(_first_arrivals([f for f, _ in after]))
    for bank, fs in late.items():
        seqs = [f.seq for f in fs]
        assert seqs == sorted(seqs), f"bank {bank} out of order after recovery: {seqs}"


def test_kill9_and_restart_lose_nothing(tmp_path, pubsub_emulator):
    topic, sub = new_topic(pubsub_emulator)
    sim = start_simulator(2, tmp_path)
    config = write_config(tmp_path, sim, topic)
    log = tmp_path / "collector.log"
    col = CollectorProcess(config, pubsub_emulator.host, log)
    try:
        col.start()
        _wait_for(lambda: _started(col), 30, "collector start")
        time.sleep(2.6)                  # mid-run, between ticks
        col.kill9()
        killed_at = time.time()
        col = CollectorProcess(config, pubsub_emulator.host, log).start()
        time.sleep(1)
        _wait_for(lambda: sum(_started_line(e) for e in col.events()) >= 2, 30, "restart")
        time.sleep(2)
        assert col.terminate() == 0
        got = pull_frames(pubsub_emulator, sub, timeout=20)
    finally:
        col.stop()
        sim.stop()
    frames = _first_arrivals([f for f, _ in got])
    keys = {}
    for f, _ in got:     # duplicates only with identical (site, bank, poll time)
        k = (f.site_id, f.bank_id, f.seq)
        assert keys.setdefault(k, f.poll_start_us) == f.poll_start_us
    for bank, fs in by_device(frames).items():
        seqs = sorted(f.seq for f in fs)
        assert seqs == list(range(1, len(seqs) + 1)), f"bank {bank}: {seqs}"
        assert max(f.poll_start_us for f in fs) / 1e6 > killed_at + 1
        assert min(f.poll_start_us for f in fs) / 1e6 < killed_at


def _started_line(e: dict) -> bool:
    return e.get("message", "").startswith("collector starting")
