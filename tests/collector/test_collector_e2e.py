"""End to end: simulator (real Modbus TCP) -> `ess collect` (subprocess) -> Pub/Sub emulator.

One 8-second run with three banks: bank 1 healthy, bank 2 answers PCS with exception replies,
bank 3 times out on BMS2. The tests below check different outcomes of that run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from collector_support import (
    CollectorProcess,
    by_device,
    new_topic,
    pull_frames,
    start_simulator,
    write_config,
)
from ess.codec import BlockStatus, Frame
from ess.decode import decoder_for
from ess.regmap import load_map
from ess_collector.simulator.faults import Fault, FaultPlan
from ess_collector.simulator.server import Simulator

TICKS = 60                 # the acceptance: 60 s at 1 Hz gives 60 frames per device
FAULTS = [{"kind": "exception", "bank": 2, "block": "PCS", "code": 4},
          {"kind": "timeout", "bank": 3, "block": "BMS2", "delay": 2.0}]


@dataclass
class Run:
    frames: list[tuple[Frame, dict]]
    events: list[dict]
    served: Simulator


@pytest.fixture(scope="module")
def run(pubsub_emulator, tmp_path_factory) -> Run:
    tmp = tmp_path_factory.mktemp("e2e")
    topic, sub = new_topic(pubsub_emulator)
    sim = start_simulator(3, tmp, FAULTS)
    col = CollectorProcess(write_config(tmp, sim, topic), pubsub_emulator.host,
                           tmp / "collector.log", ticks=TICKS)
    try:
        col.start()
        assert col.wait(TICKS + 30) == 0, col.log.read_text()[-3000:]
        frames = pull_frames(pubsub_emulator, sub,
                             until=lambda fs: len(fs) >= 3 * TICKS, timeout=20)
    finally:
        col.stop()
        sim.stop()
    # the same fault plan as the simulator process (its t0 came back with READY)
    served = Simulator(3, 0, FaultPlan([Fault(**f) for f in FAULTS], 0, sim.t0))
    return Run(frames, col.events(), served)


def test_frames_decode_to_exactly_what_was_served(run):
    dec = decoder_for(load_map("default"))
    assert run.frames
    for frame, _ in run.frames:
        second = frame.poll_start_us // 1_000_000
        assert frame.poll_end_us // 1_000_000 == second, "poll crossed a second boundary"
        served = run.served.registers_at(frame.bank_id, second)
        got = {n: (b.values() if b.ok else None) for n, b in frame.blocks.items()}
        expected = {n: (served[n] if got[n] is not None else None) for n in served}
        assert dec.decode(got, frame.bank_id) == dec.decode(expected, frame.bank_id)
        for n, values in got.items():
            if values is not None:
                assert values == served[n], (frame.bank_id, n)


def test_n_ticks_give_n_frames_with_consecutive_sequence_numbers(run):
    devices = by_device([f for f, _ in run.frames])
    assert sorted(devices) == [1, 2, 3]
    for bank, frames in devices.items():
        frames.sort(key=lambda f: f.seq)
        assert [f.seq for f in frames] == list(range(1, TICKS + 1)), bank
        seconds = [f.poll_start_us // 1_000_000 for f in frames]
        assert seconds == list(range(seconds[0], seconds[0] + TICKS)), bank
    stopped = next(e for e in run.events if e.get("message", "").startswith("collector stopped"))
    jitter_p99 = stopped["jitter_ms_p99"]
    print(f"\ntick jitter p99: {jitter_p99} ms over {stopped['polls']} polls")
    assert stopped["missed"] == 0
    assert jitter_p99 < 100


def test_failed_blocks_are_marked_and_the_rest_keeps_flowing(run):
    devices = by_device([f for f, _ in run.frames])
    for f in devices[1]:
        assert all(b.ok for b in f.blocks.values())
    for f in devices[2]:
        assert f.blocks["PCS"].status == BlockStatus.EXCEPTION
        assert f.blocks["PCS"].describe() == "exception:4"
        assert all(f.blocks[n].ok for n in ("BMS1", "BMS2", "ETC"))
    for f in devices[3]:
        assert f.blocks["BMS2"].status == BlockStatus.TIMEOUT
        assert all(f.blocks[n].ok for n in ("BMS1", "PCS", "ETC"))
    warned = {e.get("device") for e in run.events if e.get("stage") == "poll"
              and e.get("failed")}
    assert warned == {"site-a/bank2", "site-a/bank3"}


def test_message_attributes(run):
    for frame, attrs in run.frames:
        assert attrs["site_id"] == "site-a" and attrs["schema_version"] == "1"
        assert attrs["first_poll"] <= frame.poll_start.isoformat().replace("+00:00", "Z") \
            <= attrs["last_poll"]
        assert 1 <= int(attrs["frame_count"]) <= 5
