"""The register CRC: CRC-32 over a frame's raw register bytes, block after block, in the frame's
block order. The collector compares it poll to poll (frozen detection); the ledger stores it as a
signed int4 (`frames.crc`) so `ess status` finds the same runs in the database."""

from __future__ import annotations

import zlib
from collections.abc import Mapping


def registers_crc(blocks: Mapping) -> int | None:
    """CRC-32 (0..2**32-1) of every block's `registers`; None unless there are blocks and every
    one read ok (`block.ok`)."""
    if not blocks:
        return None
    crc = 0
    for block in blocks.values():
        if not block.ok:
            return None
        crc = zlib.crc32(block.registers, crc)
    return crc


def as_int4(crc: int) -> int:
    """A CRC-32 as PostgreSQL's signed `integer` holds it."""
    return crc - (1 << 32) if crc >= 1 << 31 else crc
