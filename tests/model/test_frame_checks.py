"""ess.frame_checks in-process: each problem of a message is refused with its reason code
(the README's error policy), the first one found; a good message passes; without a sites config
only the maps and the database's ranges are checked (redecode)."""

from __future__ import annotations

import dataclasses

import pytest
from ess.codec import BlockData, Frame
from ess.frame_checks import (
    BANK_MAX,
    POLL_MAX_US,
    POLL_MIN_US,
    POLL_US_MAX,
    SEQ_MAX,
    FrameChecks,
    check_frames,
)
from ess.regmap import load_map
from ess.sites import parse_sites

DEFAULT = load_map("default")
METER = load_map("examples/pcs-meter")
SITES = parse_sites({"sites": [
    {"site_id": "site-a", "devices": [{"host": "127.0.0.1", "port": 5020, "bank_id": 1},
                                      {"host": "127.0.0.1", "port": 5021, "bank_id": 2,
                                       "map": "examples/pcs-meter"}]}]})
T0 = 1_772_000_000_000_000


def frame(**changes) -> Frame:
    good = Frame("site-a", 1, 7, T0, T0 + 30_000, DEFAULT.map_id, DEFAULT.version,
                 {b.name: BlockData(registers=b"\x00\x00" * b.words) for b in DEFAULT.blocks})
    return dataclasses.replace(good, **changes)


def reason(frames: list[Frame], checks: FrameChecks | None = None) -> str | None:
    try:
        (checks or FrameChecks(SITES)).check(frames)
    except Exception as exc:       # noqa: BLE001 - the reason is what is asserted
        return getattr(exc, "reason", type(exc).__name__)
    return None


def test_a_good_message_passes():
    meter = frame(bank_id=2, map_id=METER.map_id, map_version=METER.version,
                  blocks={b.name: BlockData() for b in METER.blocks})
    assert reason([frame(), frame(seq=8), meter]) is None
    check_frames([frame()], SITES)


@pytest.mark.parametrize("frames, code", [
    ([], "empty_message"),
    ([frame()] * 2001, "too_many_frames"),
    ([frame(bank_id=0)], "bank_id_out_of_range"),
    ([frame(bank_id=BANK_MAX + 1)], "bank_id_out_of_range"),
    ([frame(poll_start_us=POLL_MIN_US - 1)], "poll_time_out_of_range"),
    ([frame(poll_start_us=POLL_MAX_US + 1, poll_end_us=POLL_MAX_US + 2)],
     "poll_time_out_of_range"),
    ([frame(poll_end_us=T0 + POLL_US_MAX + 1)], "poll_time_out_of_range"),
    ([frame(seq=SEQ_MAX + 1)], "seq_out_of_range"),
    ([frame(site_id="site-x")], "unknown_site"),
    ([frame(bank_id=3)], "unknown_bank"),
    ([frame(map_version=99)], "unknown_map_version"),
    ([frame(map_id=METER.map_id, map_version=METER.version)], "wrong_device_map"),
    ([frame(blocks={})], "no_blocks"),
    ([frame(blocks={"NOPE": BlockData()})], "unknown_blocks"),
    ([frame(), frame(bank_id=0)], "bank_id_out_of_range"),       # any frame of the message
])
def test_each_problem_has_its_reason(frames, code):
    assert reason(frames) == code


def test_the_limits_are_the_edges_of_what_the_database_holds():
    edges = [frame(bank_id=BANK_MAX, site_id="site-a"), frame(seq=SEQ_MAX),
             frame(poll_start_us=POLL_MIN_US, poll_end_us=POLL_MIN_US),
             frame(poll_end_us=T0 + POLL_US_MAX)]
    assert reason(edges, FrameChecks(None, {DEFAULT.key: DEFAULT})) is None
    assert reason([frame()] * 10, FrameChecks(SITES, max_frames=9)) == "too_many_frames"


def test_the_first_problem_is_told_with_the_frames_seq():
    with pytest.raises(Exception) as err:
        FrameChecks(SITES).check([frame(seq=41, site_id="site-x", bank_id=0)])
    assert err.value.reason == "bank_id_out_of_range"      # the range before the site
    assert str(err.value).startswith("frame seq 41: bank 0 is outside 1..32767")


def test_without_sites_only_the_maps_and_ranges_count():
    checks = FrameChecks(None, {DEFAULT.key: DEFAULT})
    assert reason([frame(site_id="anywhere", bank_id=99)], checks) is None
    assert reason([frame(map_version=2)], checks) == "unknown_map_version"
    assert reason([frame(blocks={"NOPE": BlockData()})], checks) == "unknown_blocks"
