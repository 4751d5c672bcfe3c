"""One open TCP connection: its own byte buffer and the strict matching of replies to a request.

Bytes are appended as they arrive and frames are cut from the head exactly by length
(`framing`), so two replies in one read are two frames and neither is lost. For the request
outstanding (one at a time), frames are taken in order:

* MBAP: a frame whose transaction id is not the request's answers nothing of ours (a late reply
  to an abandoned request, another master's, or id 0): it is discarded, logged and counted, and
  the wait goes on within the budget. A frame with the request's id must answer it exactly
  (unit id, function code, byte count, count: `pdu.check_reply`), else MismatchedReply.
* RTU (no transaction id): a frame with a bad CRC is BadCrc. A frame that may be the late reply
  to a request that timed out with nothing of its reply received (`late.LateReplies`: same
  unit, function and byte count) is taken for it and discarded, even when it would also answer
  the request outstanding: when in doubt the block fails, it never takes a stale value
  (TakenForLate). A request that failed after such a discard is not expected late in turn (its
  reply was most likely the one discarded), so a unit that recovers loses one poll, not every
  poll. A frame from another unit, or with another function,
  cannot be the answer: it is discarded (a late reply, another master's) and the wait goes on.
  A frame of the request's unit and function must answer it exactly, else MismatchedReply; its
  byte count is checked before the frame is cut, since the frame's length follows from it.

Before a request, complete frames still in the buffer are unsolicited: discarded and logged;
an incomplete rest is line noise in RTU (discarded) and an out-of-step stream in MBAP (reset).
Every request that gets no accepted answer tells the caller to reset the connection
(errors.RequestFailed.reset): a timeout too, since some devices and gateways stamp a late reply
with the transaction id (and unit id) of the request outstanding when it finally comes; a closed
connection cannot carry it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .errors import (
    BadCrc,
    LinkDown,
    MismatchedReply,
    NoReply,
    TakenForLate,
    UnansweredAfterDiscard,
)
from .framing import FRAMINGS, Adu
from .late import LateReplies
from .pdu import Answer, Request, check_reply


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: Connection):
        self.owner = owner

    def data_received(self, data: bytes) -> None:
        self.owner._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(str(exc) if exc else "closed by the device")


class Connection:
    """An open connection; `exchange` sends one request and returns its accepted answer."""

    def __init__(self, framing: str, late: LateReplies | None = None,
                 on_discard: Callable[[Adu, str], None] | None = None):
        self.framing = FRAMINGS[framing]
        self.late = late if late is not None else LateReplies(1.0)
        self.on_discard = on_discard or (lambda adu, why: None)
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed: str | None = None
        self.accepted = 0            # replies accepted on this connection
        self.discarded = 0
        self._took_own_key = False
        self._wake: asyncio.Future | None = None

    @classmethod
    async def open(cls, host: str, port: int, framing: str, budget: float,
                   late: LateReplies | None = None, on_discard=None) -> Connection:
        """Connect within `budget` seconds (OSError or TimeoutError otherwise)."""
        conn = cls(framing, late, on_discard)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(budget):
            conn.transport, _ = await loop.create_connection(lambda: _Protocol(conn), host, port)
        return conn

    def close(self, why: str = "closed") -> None:
        if self.transport is not None:
            self.transport.abort()
        self._lost(why)

    # ---- protocol callbacks -----------------------------------------------------------------
    def _received(self, data: bytes) -> None:
        self.buf += data
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(True)

    def _lost(self, why: str) -> None:
        if self.closed is None:
            self.closed = why
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(True)

    async def _more(self, left: float) -> bool:
        """Wait up to `left` s for bytes (or the connection's end); False on timeout."""
        loop = asyncio.get_running_loop()
        self._wake = fut = loop.create_future()
        timer = loop.call_later(left, _settle, fut)
        try:
            return await fut
        finally:
            timer.cancel()
            self._wake = None

    # ---- one request ------------------------------------------------------------------------
    def tidy(self) -> bool:
        """Before a request: discard the complete frames left in the buffer (unsolicited; an
        RTU late reply among them is taken for it) and, RTU, any rest (line noise: an RTU
        master flushes before each request). False when MBAP bytes remain that are not a whole
        frame: the stream is out of step (reset it), or the next reply would be read behind
        them."""
        try:
            while (adu := self.framing.cut(self.buf)) is not None:
                late = not self.framing.has_tid and adu.crc_ok and self.late.take(adu)
                self._discard(adu, "a late reply, before the next request" if late
                              else "unsolicited: no request was outstanding")
        except MismatchedReply:
            pass
        if self.buf and self.framing.has_tid:
            return False
        if self.buf:
            self._discard(Adu(-1, b"", bytes(self.buf)), "noise between requests")
            self.buf.clear()
        return True

    async def exchange(self, req: Request, tid: int, budget: float) -> Answer:
        """Send `req` (transaction id `tid`) and return its answer; RequestFailed otherwise."""
        if self.closed is not None:
            raise LinkDown(self.closed)
        end = time.monotonic() + budget
        self.transport.write(self.framing.request(tid, req))
        discarded = self.discarded
        self._took_own_key = False
        while True:
            answer = self._match(req, tid)
            if answer is not None:
                self.accepted += 1
                self.late.settle(req.unit)  # RTU: its earlier late replies would have come first
                return answer
            if self.closed is not None:
                raise LinkDown(self.closed)
            left = end - time.monotonic()
            if left <= 0 or not await self._more(left):
                break
        if not self.framing.has_tid and not (self._took_own_key or self._reply_began(req)):
            self.late.expect(req)           # its reply may still come
        if self._took_own_key:
            raise TakenForLate("a reply shaped like ours was taken for the late reply to an "
                               "earlier request of this unit")
        if self.discarded > discarded:
            raise UnansweredAfterDiscard("only replies that answer nothing of ours came")
        raise NoReply(f"no reply in time ({len(self.buf)} bytes of an incomplete frame)"
                      if self.buf else "no reply in time")

    def _match(self, req: Request, tid: int) -> Answer | None:
        """The answer among the frames received so far (discarding others), None: wait."""
        while True:
            if not self.framing.has_tid:
                self._early_rtu_check(req)
            adu = self.framing.cut(self.buf)
            if adu is None:
                return None
            if self.framing.has_tid:
                if adu.tid != tid:
                    self._discard(adu, f"transaction id {adu.tid}, not the outstanding {tid}")
                    continue
                if adu.unit != req.unit:
                    raise MismatchedReply(f"unit id {adu.unit}, expected {req.unit}")
                return self._checked(req, tid, adu)
            if not adu.crc_ok:
                raise BadCrc(f"CRC mismatch in {adu.raw.hex()}")
            if self.late.take(adu):
                self._took_own_key |= _shaped_like(adu, req)
                self._discard(adu, "taken for the late reply to a request that timed out")
                continue
            if adu.unit != req.unit or adu.function & 0x7F != req.function:
                self._discard(adu, f"unit {adu.unit} function {adu.function}: not the request "
                              "outstanding")
                continue
            return self._checked(req, tid, adu)

    def _checked(self, req: Request, tid: int, adu: Adu) -> Answer:
        """`adu`'s answer to `req`, unless a frame already received behind it would answer `req`
        with other bytes (RTU: a duplicate or stale reply of the same shape came first): with
        two answers neither is sure, MismatchedReply."""
        answer = check_reply(req, adu.pdu)
        probe, other = bytearray(self.buf), None
        try:
            while (other := self.framing.cut(probe)) is not None and (other.raw == adu.raw or not (
                    (other.tid, other.unit) == (tid, req.unit) if self.framing.has_tid
                    else other.crc_ok and _shaped_like(other, req))):
                pass
        except MismatchedReply:         # what follows is not a frame: no second answer
            other = None
        if other is not None:
            raise MismatchedReply(f"two different replies to one request: "
                                  f"{adu.raw[:16].hex()}, {other.raw[:16].hex()}")
        return answer

    def _early_rtu_check(self, req: Request) -> None:
        """An RTU reply of ours whose byte count is wrong fails before it is cut (its length
        comes from that byte count, so its CRC would be checked over the wrong bytes)."""
        b = self.buf
        if (len(b) >= 3 and b[0] == req.unit and b[1] == req.function
                and b[2] != req.byte_count and self.late.find(b[0], b[1], b[2]) is None):
            raise MismatchedReply(f"byte count {b[2]}, expected {req.byte_count}")

    def _reply_began(self, req: Request) -> bool:
        """RTU: the buffer starts like `req`'s reply (its unit, function and byte count) and no
        late reply of that shape is expected: the reply came, cut short, so it cannot come late
        whole."""
        b = self.buf
        if len(b) < 3 or b[0] != req.unit or b[1] & 0x7F != req.function:
            return False
        n = None if b[1] & 0x80 else b[2]
        return n in (None, req.byte_count) and self.late.find(b[0], req.function, n) is None

    def _discard(self, adu: Adu, why: str) -> None:
        self.discarded += 1
        self.on_discard(adu, why)


def _shaped_like(adu: Adu, req: Request) -> bool:
    """True when the frame has the unit, function and byte count a reply to `req` has."""
    fc = adu.function
    if adu.unit != req.unit or fc & 0x7F != req.function:
        return False
    return bool(fc & 0x80) or (len(adu.pdu) > 1 and adu.pdu[1] == req.byte_count)


def _settle(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(False)
