"""Frame codec: compact, versioned binary for raw register frames (collector -> functions).

Message layout (all big-endian):
    b"ESSM" | version:u8 | frame_count:u16 | frame_count x (length:u32 | frame body)
Message version 1 is that; version 2 (COMPRESSED) is the same message with everything after the
version byte deflated (zlib): a quarter of the bytes for the default map. Readers read both; a
writer sends version 2 only when asked (`compress`), once every reader is deployed.
Frame body (version 1):
    bank_id:u16 unit_id:u8 seq:u64 poll_start_us:i64 poll_end_us:i64 map_version:u16
    site_id:(u8 len, utf-8) map_id:(u8 len, utf-8) block_count:u8
    block_count x (name:(u8 len, ascii) status:u8 exception_code:u8 count:u16 registers:count x u16)
    crc32:u32 of everything before it in the body
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime

from .errors import PermanentError
from .wire.times import to_datetime

MAGIC = b"ESSM"
VERSION = 1
COMPRESSED = 2                      # message version: version 1, deflated after the version byte
MAX_INFLATED = 64 * 1024 * 1024     # a compressed message inflates to at most this many bytes
MAX_FRAMES_PER_MESSAGE = 65535
_MSG_HEAD = struct.Struct(">4sBH")
_LEN = struct.Struct(">I")
_FRAME_HEAD = struct.Struct(">HBQqqH")
_BLOCK_HEAD = struct.Struct(">BBH")
_CRC = struct.Struct(">I")


class FrameError(PermanentError):
    """A message or frame cannot be decoded."""

    reason = "undecodable_frame"


class UnknownVersion(FrameError):
    """The message was written by a codec version this one does not read."""

    reason = "unknown_codec_version"


class CorruptFrame(FrameError):
    """The bytes are truncated, garbled or fail their checksum."""


class BlockStatus(enum.IntEnum):
    """Outcome of reading one block.

    Values travel in frames: a reader refuses a value it does not know (CorruptFrame), so a new
    value reaches the readers (ingest, redecode) before any collector writes it
    (docs/architecture.md, "Frames and messages").
    """

    OK = 0
    TIMEOUT = 1
    EXCEPTION = 2   # the device answered with a Modbus exception reply
    TRANSPORT = 3   # connection refused, reset or closed
    SKIPPED = 4     # not attempted (no time left before the next tick, or backing off)
    MISMATCHED_REPLY = 5   # a reply came that does not answer the request (nothing of it kept)
    BAD_CRC = 6     # an RTU reply failed its CRC-16 check


@dataclass
class BlockData:
    """One block of a frame: its status and, when read, its registers as big-endian bytes."""

    status: BlockStatus = BlockStatus.OK
    registers: bytes = b""
    exception_code: int = 0

    @property
    def ok(self) -> bool:
        return self.status == BlockStatus.OK

    def values(self) -> list[int]:
        """Registers as a list of ints."""
        return list(struct.unpack(f">{len(self.registers) // 2}H", self.registers))

    def describe(self) -> str:
        """Status text as logged and stored: ok, timeout, exception:<code>, transport, skipped,
        mismatched_reply, bad_crc."""
        if self.status == BlockStatus.EXCEPTION:
            return f"exception:{self.exception_code}"
        return self.status.name.lower()


@dataclass
class Frame:
    """One poll of one bank."""

    site_id: str
    bank_id: int
    seq: int
    poll_start_us: int
    poll_end_us: int
    map_id: str
    map_version: int
    blocks: dict[str, BlockData] = field(default_factory=dict)
    unit_id: int = 1

    @property
    def poll_start(self) -> datetime:
        return to_datetime(self.poll_start_us)

    @property
    def poll_end(self) -> datetime:
        return to_datetime(self.poll_end_us)

    @staticmethod
    def registers_to_bytes(values) -> bytes:
        """Pack register ints (0..65535) as big-endian words."""
        return struct.pack(f">{len(values)}H", *values)


def _short_str(value: str, what: str) -> bytes:
    raw = value.encode()
    if len(raw) > 255:
        raise FrameError(f"{what} is longer than 255 bytes")
    return bytes([len(raw)]) + raw


def encode_frame(frame: Frame) -> bytes:
    """Serialise one frame body (with its checksum)."""
    parts = [_FRAME_HEAD.pack(frame.bank_id, frame.unit_id, frame.seq, frame.poll_start_us,
                              frame.poll_end_us, frame.map_version),
             _short_str(frame.site_id, "site_id"), _short_str(frame.map_id, "map_id"),
             bytes([len(frame.blocks)])]
    for name, block in frame.blocks.items():
        regs = block.registers if block.ok else b""
        parts += [_short_str(name, "block name"),
                  _BLOCK_HEAD.pack(int(block.status), block.exception_code, len(regs) // 2), regs]
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def encode_frames(frames: list[Frame], compress: bool = False) -> bytes:
    """Pack frames into one message body (message version 2, deflated, when `compress`)."""
    return pack_bodies([encode_frame(f) for f in frames], compress)


def pack_bodies(bodies: list[bytes], compress: bool = False) -> bytes:
    """One message body from frame bodies as `encode_frame` wrote them (byte for byte: the
    collector's spool hands its stored bodies over without decoding them again); message
    version 2 (deflated) when `compress`."""
    if not 1 <= len(bodies) <= MAX_FRAMES_PER_MESSAGE:
        raise FrameError(f"a message holds 1..{MAX_FRAMES_PER_MESSAGE} frames, got {len(bodies)}")
    out = [_MSG_HEAD.pack(MAGIC, VERSION, len(bodies))]
    for body in bodies:
        out += [_LEN.pack(len(body)), body]
    plain = b"".join(out)
    if not compress:
        return plain
    return MAGIC + bytes([COMPRESSED]) + zlib.compress(plain[len(MAGIC) + 1:])


def _inflate(data: bytes) -> bytes:
    """A version 2 message as the version 1 message it deflates; CorruptFrame when the stream is
    broken, truncated, followed by stray bytes or inflates past MAX_INFLATED."""
    inflater = zlib.decompressobj()
    try:
        rest = inflater.decompress(data[len(MAGIC) + 1:], MAX_INFLATED)
    except zlib.error as exc:
        raise CorruptFrame(f"message: compressed payload is not a deflate stream ({exc})") from exc
    if inflater.unconsumed_tail:
        raise CorruptFrame(f"message: inflates to more than {MAX_INFLATED} bytes")
    if not inflater.eof:
        raise CorruptFrame("message: compressed payload is truncated")
    if inflater.unused_data:
        raise CorruptFrame(f"message: {len(inflater.unused_data)} stray bytes after the "
                           "compressed payload")
    return MAGIC + bytes([VERSION]) + rest


def verify_frame(body: bytes, where: str = "frame") -> None:
    """Raise CorruptFrame unless `body` carries its own checksum (no parsing: a stored body's
    bytes are checked before they are sent on as they are)."""
    size = len(body) - _CRC.size
    if size < _FRAME_HEAD.size:
        raise CorruptFrame(f"{where}: {len(body)} bytes is too short for a frame")
    (crc,) = _CRC.unpack_from(body, size)
    if zlib.crc32(memoryview(body)[:size]) != crc:
        raise CorruptFrame(f"{where}: checksum mismatch")


_STATUS = {status.value: status for status in BlockStatus}


def _truncated(where: str, pos: int, needs: int, left: int) -> CorruptFrame:
    return CorruptFrame(f"{where}: truncated at byte {pos} (needs {needs} more, {left} left)")


def _short_text(body: bytes, pos: int, size: int, where: str) -> tuple[str, int]:
    if pos >= size:
        raise _truncated(where, pos, 1, size - pos)
    start = pos + 1
    end = start + body[pos]
    if end > size:
        raise _truncated(where, start, end - start, size - start)
    try:
        return body[start:end].decode(), end
    except UnicodeDecodeError as exc:
        raise CorruptFrame(f"{where}: text at byte {start} is not UTF-8") from exc


def decode_frame(body: bytes, where: str = "frame") -> Frame:
    """Parse one frame body, checking its checksum."""
    size = len(body) - _CRC.size
    if size < 0:
        raise CorruptFrame(f"{where}: {len(body)} bytes is too short for a frame")
    (crc,) = _CRC.unpack_from(body, size)
    if zlib.crc32(memoryview(body)[:size]) != crc:
        raise CorruptFrame(f"{where}: checksum mismatch")
    if _FRAME_HEAD.size > size:
        raise _truncated(where, 0, _FRAME_HEAD.size, size)
    bank_id, unit_id, seq, start_us, end_us, map_version = _FRAME_HEAD.unpack_from(body)
    site_id, pos = _short_text(body, _FRAME_HEAD.size, size, where)
    map_id, pos = _short_text(body, pos, size, where)
    if pos >= size:
        raise _truncated(where, pos, 1, size - pos)
    count, pos = body[pos], pos + 1
    blocks = {}
    for _ in range(count):
        name, pos = _short_text(body, pos, size, where)
        if pos + _BLOCK_HEAD.size > size:
            raise _truncated(where, pos, _BLOCK_HEAD.size, size - pos)
        status, code, n = _BLOCK_HEAD.unpack_from(body, pos)
        pos += _BLOCK_HEAD.size
        if status not in _STATUS:
            raise CorruptFrame(f"{where}: block {name} has unknown status {status}")
        end = pos + 2 * n
        if end > size:
            raise _truncated(where, pos, 2 * n, size - pos)
        blocks[name] = BlockData(_STATUS[status], body[pos:end], code)
        pos = end
    if pos != size:
        raise CorruptFrame(f"{where}: {size - pos} stray bytes after the blocks")
    return Frame(site_id, bank_id, seq, start_us, end_us, map_id, map_version, blocks, unit_id)


def decode_frames(data: bytes) -> list[Frame]:
    """Parse a message body into frames; raise a FrameError subclass naming the problem."""
    data = bytes(data)
    if len(data) > len(MAGIC) and data[:len(MAGIC)] == MAGIC and data[len(MAGIC)] == COMPRESSED:
        data = _inflate(data)
    if len(data) < _MSG_HEAD.size:
        raise CorruptFrame(f"message: {len(data)} bytes is too short for a header")
    magic, version, count = _MSG_HEAD.unpack_from(data)
    if magic != MAGIC:
        raise CorruptFrame(f"message: bad magic {bytes(magic)!r} (expected {MAGIC!r})")
    if version != VERSION:
        raise UnknownVersion(f"message: codec version {version} (this reader knows {VERSION} "
                             f"and {COMPRESSED})")
    pos, frames = _MSG_HEAD.size, []
    for i in range(count):
        if pos + _LEN.size > len(data):
            raise _truncated("message", pos, _LEN.size, len(data) - pos)
        (length,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        if pos + length > len(data):
            raise _truncated("message", pos, length, len(data) - pos)
        frames.append(decode_frame(data[pos:pos + length], where=f"frame {i}"))
        pos += length
    if pos != len(data):
        raise CorruptFrame(f"message: {len(data) - pos} stray bytes after {count} frames")
    return frames
