"""Modbus ADUs on a TCP byte stream, cut exactly by length (pure; no I/O).

* `tcp` (MBAP): transaction id, protocol id 0, length, unit id, PDU. The length field cuts the
  frame; a header with another protocol id or a length outside 2..254 is not Modbus.
* `rtu` (RTU framing over TCP, as serial-to-Ethernet gateways pass it through): unit id, PDU,
  CRC-16 (low byte first). A reply's length follows from its header: 5 bytes for an exception
  reply, 5 + byte count for a read reply (function codes 1 to 4); any other function code cannot
  be framed.

`cut(buf)` removes the first complete frame from the head of `buf` and returns it, returns None
while the frame is incomplete, and raises MismatchedReply when the head cannot be a frame.
Nothing else is ever taken from the buffer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ess.wire.crc16 import crc_ok, with_crc

from .errors import MismatchedReply
from .pdu import BIT_FUNCTIONS, REGISTER_FUNCTIONS, Request

MBAP = struct.Struct(">HHHB")     # transaction id, protocol id, length, unit id
MAX_PDU = 253
READS = BIT_FUNCTIONS + REGISTER_FUNCTIONS


@dataclass(frozen=True)
class Adu:
    """One frame cut from the stream."""

    unit: int
    pdu: bytes
    raw: bytes
    tid: int | None = None      # MBAP only
    crc_ok: bool = True         # RTU only

    @property
    def function(self) -> int:
        return self.pdu[0] if self.pdu else -1


class MbapFraming:
    """Modbus TCP: MBAP header, frames cut by their length field."""

    name = "tcp"
    has_tid = True

    @staticmethod
    def request(tid: int, req: Request) -> bytes:
        return MBAP.pack(tid, 0, 6, req.unit) + req.pdu()

    @staticmethod
    def cut(buf: bytearray) -> Adu | None:
        if len(buf) < MBAP.size:
            return None
        tid, proto, length, unit = MBAP.unpack_from(buf)
        if proto != 0 or not 2 <= length <= MAX_PDU + 1:
            raise MismatchedReply(f"not an MBAP header: {bytes(buf[:MBAP.size]).hex()} "
                                  f"(protocol id {proto}, length {length})")
        end = 6 + length
        if len(buf) < end:
            return None
        raw = bytes(buf[:end])
        del buf[:end]
        return Adu(unit, raw[MBAP.size:], raw, tid)


class RtuFraming:
    """RTU over TCP: unit id, PDU, CRC-16; frames cut by the length their header implies."""

    name = "rtu"
    has_tid = False

    @staticmethod
    def request(tid: int, req: Request) -> bytes:
        return with_crc(bytes([req.unit]) + req.pdu())

    @staticmethod
    def cut(buf: bytearray) -> Adu | None:
        if len(buf) < 2:
            return None
        fc = buf[1]
        if fc & 0x80:
            end = 5
        elif fc in READS:
            if len(buf) < 3:
                return None
            end = 5 + buf[2]
        else:
            raise MismatchedReply(f"cannot frame an RTU reply with function code {fc} "
                                  f"({bytes(buf[:8]).hex()})")
        if len(buf) < end:
            return None
        raw = bytes(buf[:end])
        del buf[:end]
        return Adu(raw[0], raw[1:-2], raw, None, crc_ok(raw))


FRAMINGS = {"tcp": MbapFraming, "rtu": RtuFraming}
