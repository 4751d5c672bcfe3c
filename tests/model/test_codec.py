"""Frame codec: round trip, size, and typed errors on bad bytes."""

import pytest
from ess.codec import (
    BlockData,
    BlockStatus,
    CorruptFrame,
    Frame,
    FrameError,
    UnknownVersion,
    decode_frames,
    encode_frames,
)
from ess.regmap import load_map
from hypothesis import given
from hypothesis import strategies as st


def full_frame(seq=1, site="site-a"):
    m = load_map("default")
    blocks = {b.name: BlockData(registers=Frame.registers_to_bytes(
        [(i * 7919 + seq) % 65536 for i in range(b.count)])) for b in m.blocks}
    return Frame(site, 2, seq, 1_764_000_000_000_000 + seq, 1_764_000_000_040_000, "default", 1,
                 blocks)


def test_round_trip_and_size():
    frames = [full_frame(i) for i in range(5)]
    frames[2].blocks["PCS"] = BlockData(BlockStatus.EXCEPTION, b"", 2)
    frames[3].blocks["ETC"] = BlockData(BlockStatus.TIMEOUT)
    data = encode_frames(frames)
    assert decode_frames(data) == frames
    assert len(encode_frames([frames[0]])) <= 1200
    assert frames[2].blocks["PCS"].describe() == "exception:2"


@pytest.mark.parametrize("data,error,message", [
    (b"", CorruptFrame, "too short"),
    (b"XXXX\x01\x00\x01", CorruptFrame, "bad magic"),
    (b"ESSM\x09\x00\x01", UnknownVersion, "codec version 9"),
])
def test_bad_headers(data, error, message):
    with pytest.raises(error, match=message):
        decode_frames(data)


def test_truncated_and_flipped_bytes():
    data = encode_frames([full_frame()])
    with pytest.raises(CorruptFrame, match="truncated"):
        decode_frames(data[:-10])
    flipped = bytearray(data)
    flipped[300] ^= 0xFF
    with pytest.raises(CorruptFrame, match="checksum"):
        decode_frames(bytes(flipped))


@given(st.binary(max_size=2000))
def test_random_bytes_never_crash(data):
    try:
        decode_frames(data)
    except FrameError:
        pass


@given(st.integers(0, 2000), st.binary(min_size=1, max_size=8))
def test_corrupted_messages_raise_typed_errors(pos, junk):
    data = bytearray(encode_frames([full_frame()]))
    pos = pos % len(data)
    data[pos:pos + len(junk)] = junk
    try:
        decode_frames(bytes(data))
    except FrameError:
        pass
