"""CRC-16/Modbus (poly 0xA001 reflected, init 0xFFFF), the checksum of an RTU frame.

An RTU frame ends with the CRC of everything before it, low byte first; a frame whose last two
bytes are its CRC that way has `crc16(frame) == 0`.
"""

from __future__ import annotations


def _table() -> tuple[int, ...]:
    out = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        out.append(crc)
    return tuple(out)


_TABLE = _table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """The CRC-16/Modbus of `data` (continue from `crc` to checksum in parts)."""
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def with_crc(data: bytes) -> bytes:
    """`data` followed by its CRC, low byte first (an RTU frame)."""
    return data + crc16(data).to_bytes(2, "little")


def crc_ok(frame: bytes) -> bool:
    """True when the frame's last two bytes are the CRC of the rest."""
    return len(frame) >= 3 and crc16(frame) == 0
