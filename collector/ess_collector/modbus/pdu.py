"""Modbus read requests and the strict check of a reply's PDU against its request (pure).

A reply PDU answers a read only when its function code is the request's (or the request's with
0x80 set: an exception reply of exactly one code byte), its byte count is the one the request
implies (2 per register; ceil(bits / 8) for coils and discrete inputs), the PDU holds exactly that
many data bytes, and a bit reply's unused high bits are 0. Anything else is a MismatchedReply.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ess.plan import MAX_BITS_PER_READ, MAX_REGISTERS_PER_READ
from ess.wire import bits

from .errors import MismatchedReply

BIT_FUNCTIONS = (1, 2)
REGISTER_FUNCTIONS = (3, 4)
_READ = struct.Struct(">BHH")


@dataclass(frozen=True)
class Request:
    """One read: `count` registers or bits from `address` of unit `unit` with `function`."""

    unit: int
    function: int
    address: int
    count: int

    def __post_init__(self) -> None:
        limit = MAX_BITS_PER_READ if self.function in BIT_FUNCTIONS else MAX_REGISTERS_PER_READ
        if self.function not in BIT_FUNCTIONS + REGISTER_FUNCTIONS:
            raise ValueError(f"function {self.function} is not a read")
        if not (0 <= self.unit <= 255 and 0 <= self.address <= 0xFFFF and 1 <= self.count <= limit
                and self.address + self.count <= 0x10000):
            raise ValueError(f"bad read {self}")

    @property
    def byte_count(self) -> int:
        """Data bytes of a correct reply."""
        return 2 * self.count if self.function in REGISTER_FUNCTIONS else -(-self.count // 8)

    def pdu(self) -> bytes:
        return _READ.pack(self.function, self.address, self.count)

    def describe(self) -> str:
        return f"unit {self.unit} fc {self.function} {self.address}+{self.count}"


@dataclass(frozen=True)
class Answer:
    """An accepted reply: register bytes (big-endian words) or bits (one 0/1 each), or an
    exception code (None: not an exception reply)."""

    data: bytes = b""
    bits: tuple[int, ...] = ()
    exception: int | None = None


def check_reply(req: Request, pdu: bytes) -> Answer:
    """The answer `pdu` gives to `req`; MismatchedReply naming the first field that is wrong."""
    if not pdu:
        raise MismatchedReply("empty PDU")
    fc = pdu[0]
    if fc == req.function | 0x80:
        if len(pdu) != 2:
            raise MismatchedReply(f"exception reply of {len(pdu)} bytes (expected 2)")
        return Answer(exception=pdu[1])
    if fc != req.function:
        raise MismatchedReply(f"function code {fc}, expected {req.function}")
    if len(pdu) < 2:
        raise MismatchedReply("reply without a byte count")
    n, data = pdu[1], pdu[2:]
    if n != len(data):
        raise MismatchedReply(f"byte count {n} but {len(data)} data bytes")
    if n != req.byte_count:
        what = (f"{n / 2:g} registers" if req.function in REGISTER_FUNCTIONS
                else f"{n} bytes of bits")
        raise MismatchedReply(f"{what} for a read of {req.count} (byte count {n}, expected "
                              f"{req.byte_count})")
    if req.function in BIT_FUNCTIONS:
        if not bits.reply_padding_ok(data, req.count):
            raise MismatchedReply(f"bits beyond the {req.count} requested are set (another count?)")
        return Answer(bits=tuple(bits.from_reply_bytes(data, req.count)))
    return Answer(data=bytes(data))
