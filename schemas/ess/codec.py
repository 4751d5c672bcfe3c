"""Frame codec: compact, versioned binary for raw register frames (collector -> functions).

Message layout (all big-endian):
    b"ESSM" | version:u8 | frame_count:u16 | frame_count x (length:u32 | frame body)
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
from datetime import UTC, datetime

MAGIC = b"ESSM"
VERSION = 1
MAX_FRAMES_PER_MESSAGE = 65535
_MSG_HEAD = struct.Struct(">4sBH")
_LEN = struct.Struct(">I")
_FRAME_HEAD = struct.Struct(">HBQqqH")
_BLOCK_HEAD = struct.Struct(">BBH")
_CRC = struct.Struct(">I")


class FrameError(ValueError):
    """A message or frame cannot be decoded."""


class UnknownVersion(FrameError):
    """The message was written by a codec version this one does not read."""


class CorruptFrame(FrameError):
    """The bytes are truncated, garbled or fail their checksum."""


class BlockStatus(enum.IntEnum):
    """Outcome of reading one block."""

    OK = 0
    TIMEOUT = 1
    EXCEPTION = 2   # the device answered with a Modbus exception reply
    TRANSPORT = 3   # connection refused, reset or closed
    SKIPPED = 4     # not attempted (device not connected)


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
        """Status text as logged and stored: ok, timeout, exception:<code>, transport, skipped."""
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
        return datetime.fromtimestamp(self.poll_start_us / 1e6, UTC)

    @property
    def poll_end(self) -> datetime:
        return datetime.fromtimestamp(self.poll_end_us / 1e6, UTC)

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


def encode_frames(frames: list[Frame]) -> bytes:
    """Pack frames into one message body."""
    if not 1 <= len(frames) <= MAX_FRAMES_PER_MESSAGE:
        raise FrameError(f"a message holds 1..{MAX_FRAMES_PER_MESSAGE} frames, got {len(frames)}")
    out = [_MSG_HEAD.pack(MAGIC, VERSION, len(frames))]
    for frame in frames:
        body = encode_frame(frame)
        out += [_LEN.pack(len(body)), body]
    return b"".join(out)


class _Reader:
    def __init__(self, data: bytes, where: str):
        self.data, self.pos, self.where = memoryview(data), 0, where

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise CorruptFrame(f"{self.where}: truncated at byte {self.pos} (needs {n} more, "
                               f"{len(self.data) - self.pos} left)")
        view = self.data[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, st: struct.Struct) -> tuple:
        return st.unpack(self.take(st.size))

    def short_str(self) -> str:
        n = self.take(1)[0]
        try:
            return bytes(self.take(n)).decode()
        except UnicodeDecodeError as exc:
            raise CorruptFrame(f"{self.where}: text at byte {self.pos - n} is not UTF-8") from exc


def decode_frame(body: bytes, where: str = "frame") -> Frame:
    """Parse one frame body, checking its checksum."""
    if len(body) < _CRC.size:
        raise CorruptFrame(f"{where}: {len(body)} bytes is too short for a frame")
    (crc,) = _CRC.unpack(body[-_CRC.size:])
    if zlib.crc32(body[:-_CRC.size]) != crc:
        raise CorruptFrame(f"{where}: checksum mismatch")
    r = _Reader(body[:-_CRC.size], where)
    bank_id, unit_id, seq, start_us, end_us, map_version = r.unpack(_FRAME_HEAD)
    site_id, map_id = r.short_str(), r.short_str()
    blocks = {}
    for _ in range(r.take(1)[0]):
        name = r.short_str()
        status, code, count = r.unpack(_BLOCK_HEAD)
        try:
            status = BlockStatus(status)
        except ValueError as exc:
            raise CorruptFrame(f"{where}: block {name} has unknown status {status}") from exc
        blocks[name] = BlockData(status, bytes(r.take(2 * count)), code)
    if r.pos != len(r.data):
        raise CorruptFrame(f"{where}: {len(r.data) - r.pos} stray bytes after the blocks")
    return Frame(site_id, bank_id, seq, start_us, end_us, map_id, map_version, blocks, unit_id)


def decode_frames(data: bytes) -> list[Frame]:
    """Parse a message body into frames; raise a FrameError subclass naming the problem."""
    if len(data) < _MSG_HEAD.size:
        raise CorruptFrame(f"message: {len(data)} bytes is too short for a header")
    magic, version, count = _MSG_HEAD.unpack_from(data)
    if magic != MAGIC:
        raise CorruptFrame(f"message: bad magic {bytes(magic)!r} (expected {MAGIC!r})")
    if version != VERSION:
        raise UnknownVersion(f"message: codec version {version} (this reader knows {VERSION})")
    r = _Reader(data, "message")
    r.pos = _MSG_HEAD.size
    frames = []
    for i in range(count):
        (length,) = r.unpack(_LEN)
        frames.append(decode_frame(bytes(r.take(length)), where=f"frame {i}"))
    if r.pos != len(data):
        raise CorruptFrame(f"message: {len(data) - r.pos} stray bytes after {count} frames")
    return frames
