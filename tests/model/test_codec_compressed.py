"""Message version 2 (deflated): the same frames as version 1, a quarter of the bytes, old
messages still read, and a broken or oversized compressed payload refused with its reason."""

from __future__ import annotations

import zlib

import pytest
from ess import codec
from ess.codec import COMPRESSED, MAGIC, CorruptFrame, UnknownVersion, decode_frames, encode_frames
from ess.regmap import load_map
from ess_collector.publisher import message_for
from ess_collector.simulator.model import registers_at

M = load_map("default")


def _site(second: int, banks: int = 10) -> list[codec.Frame]:
    t = 1_790_000_000 + second
    return [codec.Frame("site-z", b, second, t * 1_000_000, t * 1_000_000 + 40_000, M.map_id,
                        M.version, {n: codec.BlockData(registers=codec.Frame.registers_to_bytes(r))
                                    for n, r in registers_at(b, t).items()})
            for b in range(1, banks + 1)]


def test_compressed_messages_decode_to_the_same_frames_and_old_ones_still_read():
    frames = _site(0) + _site(1)
    plain, packed = encode_frames(frames), encode_frames(frames, compress=True)
    assert plain[4] == codec.VERSION and packed[:5] == MAGIC + bytes([COMPRESSED])
    assert decode_frames(packed) == decode_frames(plain) == frames
    assert len(packed) < len(plain) / 2          # Pub/Sub bills these bytes
    bodies, polls = [codec.encode_frame(f) for f in frames], [f.poll_start_us for f in frames]
    body, attrs = message_for("site-z", bodies, polls, compress=True)
    assert body == packed and attrs["schema_version"] == "2"
    assert message_for("site-z", bodies, polls)[1]["schema_version"] == "1"


def test_broken_compressed_payloads_are_refused(monkeypatch):
    packed = encode_frames(_site(0, banks=2), compress=True)
    head = MAGIC + bytes([COMPRESSED])
    cases = [(packed[:-3], "truncated"), (packed + b"xx", "stray bytes"),
             (head + b"not deflate", "not a deflate stream"),
             (head + zlib.compress(b"\x00\x01junk"), "truncated at byte")]
    for data, message in cases:
        with pytest.raises(CorruptFrame, match=message):
            decode_frames(data)
    monkeypatch.setattr(codec, "MAX_INFLATED", 1000)        # a small bomb is still a bomb
    with pytest.raises(CorruptFrame, match="inflates to more than 1000 bytes"):
        decode_frames(head + zlib.compress(bytes(100_000)))
    with pytest.raises(UnknownVersion, match="codec version 3"):
        decode_frames(MAGIC + b"\x03" + packed[5:])
