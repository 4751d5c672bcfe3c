"""Block statuses in frames: the reply-acceptance statuses travel and read back; a frame written
before them reads as it always did; a status this reader does not know is refused, named."""

import struct
import zlib

import pytest
from ess.codec import BlockData, BlockStatus, CorruptFrame, Frame, decode_frames, encode_frames
from ess.db.ledger import failed_text


def _frame(**blocks) -> Frame:
    return Frame("site-a", 1, 3, 1_764_000_000_000_000, 1_764_000_000_040_000, "default", 1,
                 {"A": BlockData(registers=b"\x00\x01"), **blocks})


def test_new_statuses_round_trip_and_name_their_kind():
    f = _frame(B=BlockData(BlockStatus.MISMATCHED_REPLY), C=BlockData(BlockStatus.BAD_CRC),
               D=BlockData(BlockStatus.EXCEPTION, exception_code=11),
               E=BlockData(BlockStatus.SKIPPED))
    [back] = decode_frames(encode_frames([f]))
    assert back == f
    assert failed_text(back) == "B:mismatched_reply C:bad_crc D:exception:11 E:skipped"
    assert [b.describe() for b in back.blocks.values()] == [
        "ok", "mismatched_reply", "bad_crc", "exception:11", "skipped"]


def test_a_frame_of_the_old_statuses_is_byte_identical():
    """Statuses 0..4 keep their numbers: frames written before this change decode unchanged."""
    assert [s.value for s in BlockStatus][:5] == [0, 1, 2, 3, 4]
    assert (BlockStatus.MISMATCHED_REPLY, BlockStatus.BAD_CRC) == (5, 6)


def test_an_unknown_status_is_refused_with_its_number():
    body = bytearray(encode_frames([_frame(B=BlockData(BlockStatus.BAD_CRC))])[11:-4])
    pos = body.index(b"\x01B") + 2
    body[pos] = 9
    data = b"ESSM\x01\x00\x01" + struct.pack(">I", len(body) + 4) + bytes(body) + struct.pack(
        ">I", zlib.crc32(bytes(body)))
    with pytest.raises(CorruptFrame, match="unknown status 9"):
        decode_frames(data)
