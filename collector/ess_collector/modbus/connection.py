"""One open TCP connection: its own byte buffer and the strict matching of replies to a request.

Bytes are appended as they arrive and frames are cut from the head exactly by length
(`framing`), so two replies in one read are two frames and neither is lost. For the request
outstanding (one at a time), frames are taken in order:

* MBAP: a frame whose transaction id is not the request's answers nothing of ours (a late reply
  to an abandoned request, another master's, or id 0): it is discarded, logged and counted, and
  the wait goes on within the budget. A frame with the request's id must answer it exactly
  (unit id, function code, byte count, count: `pdu.check_reply`), else MismatchedReply.
* RTU (no transaction id): a frame with a bad CRC is BadCrc. Replies on a serial line come in
  request order, so a request that timed out may still get its late reply only before the next
  accepted one: until then (and for at most `late_window` s) a frame that would answer it (same
  unit, function and byte count) is taken for that late reply and discarded, even when it would
  also answer the request outstanding (when in doubt the block fails; it never takes a stale
  value). A request that failed after such a discard is not waited for again (its reply was
  most likely the one discarded), so a unit that recovers loses one poll, not every poll.
  A frame from another unit, or with another function, cannot be the answer: it is discarded
  (a late reply, another master's) and the wait goes on. A frame of the request's unit and
  function must answer it exactly (byte count, count, padding bits), else MismatchedReply; its
  byte count is checked before the frame is cut, since the frame's length follows from it.

Before a request, complete frames still in the buffer are unsolicited: discarded and logged.
A timeout leaves the connection open (a late reply is recognised as above), except when part of
a frame is left in the buffer or nothing at all arrived for SILENT_RESET requests in a row (to
two units or more on a shared connection).
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
    RequestFailed,
    UnansweredAfterDiscard,
)
from .framing import FRAMINGS, Adu
from .pdu import Answer, Request, check_reply

# timeouts in a row with not one byte received (from two units or more, when the connection
# serves several: one hung unit behind a gateway is not a dead link): the link is dead
SILENT_RESET = 3


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: Connection):
        self.owner = owner

    def data_received(self, data: bytes) -> None:
        self.owner._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(str(exc) if exc else "closed by the device")


class Connection:
    """An open connection; `exchange` sends one request and returns its accepted answer."""

    def __init__(self, framing: str, late_window: float,
                 on_discard: Callable[[Adu, str], None] | None = None):
        self.framing = FRAMINGS[framing]
        self.late_window = late_window
        self.on_discard = on_discard or (lambda adu, why: None)
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed: str | None = None
        self.accepted = 0            # replies accepted on this connection
        self.received = 0            # bytes received
        self.discarded = 0
        self._silent = 0
        self._silent_units: set[int] = set()    # units whose requests timed out since a byte
        self._units: set[int] = set()           # units asked on this connection
        self._took_own_key = False
        self._wake: asyncio.Future | None = None
        self._late: dict[tuple[int, int, int], list[float]] = {}     # RTU: key -> expiries

    @classmethod
    async def open(cls, host: str, port: int, framing: str, budget: float, late_window: float,
                   on_discard=None) -> Connection:
        """Connect within `budget` seconds (OSError or TimeoutError otherwise)."""
        conn = cls(framing, late_window, on_discard)
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
        self.received += len(data)
        self._silent = 0
        self._silent_units.clear()
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
        """Discard complete frames left before a request (unsolicited); False when the buffer
        holds bytes that cannot be a frame (the stream is out of step: reset it)."""
        try:
            while (adu := self.framing.cut(self.buf)) is not None:
                self._discard(adu, "unsolicited: no request was outstanding")
        except MismatchedReply:
            return False
        return True

    async def exchange(self, req: Request, tid: int, budget: float) -> Answer:
        """Send `req` (transaction id `tid`) and return its answer; RequestFailed otherwise."""
        if self.closed is not None:
            raise LinkDown(self.closed)
        end = time.monotonic() + budget
        self._units.add(req.unit)
        self.transport.write(self.framing.request(tid, req))
        discarded, received = self.discarded, self.received
        self._took_own_key = False
        while True:
            answer = self._match(req, tid)
            if answer is not None:
                self.accepted += 1
                self._late.clear()          # RTU: earlier late replies would have come first
                return answer
            if self.closed is not None:
                raise LinkDown(self.closed)
            left = end - time.monotonic()
            if left <= 0 or not await self._more(left):
                raise self._timed_out(req, self.discarded > discarded, self.received > received)

    def _timed_out(self, req: Request, discarded: bool, received: bool) -> RequestFailed:
        if not self.framing.has_tid and not self._took_own_key:   # its late reply may come
            key = (req.unit, req.function, req.byte_count)
            self._late.setdefault(key, []).append(time.monotonic() + self.late_window)
        if self.buf:
            exc: RequestFailed = NoReply(f"incomplete reply ({len(self.buf)} bytes) at timeout")
            exc.reset = True                # the stream is out of step
            return exc
        if discarded:
            return UnansweredAfterDiscard("only replies that answer nothing of ours came")
        if not received:
            self._silent += 1
            self._silent_units.add(req.unit)
            if self._silent >= SILENT_RESET and len(self._silent_units) >= min(2, len(self._units)):
                exc = NoReply(f"nothing received for {self._silent} requests in a row")
                exc.reset = True
                return exc
        return NoReply("no reply in time")

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
                return check_reply(req, adu.pdu)
            if not adu.crc_ok:
                raise BadCrc(f"CRC mismatch in {adu.raw.hex()}")
            if self._take_late(adu):
                self._took_own_key |= _shaped_like(adu, req)
                self._discard(adu, "taken for the late reply to a request that timed out")
                continue
            if adu.unit != req.unit or adu.function & 0x7F != req.function:
                self._discard(adu, f"unit {adu.unit} function {adu.function}: not the request "
                              "outstanding")
                continue
            return check_reply(req, adu.pdu)

    def _early_rtu_check(self, req: Request) -> None:
        """An RTU reply of ours whose byte count is wrong fails before it is cut (its length
        comes from that byte count, so its CRC would be checked over the wrong bytes)."""
        b = self.buf
        if (len(b) >= 3 and b[0] == req.unit and b[1] == req.function
                and b[2] != req.byte_count and not self._late_key((b[0], b[1], b[2]))):
            raise MismatchedReply(f"byte count {b[2]}, expected {req.byte_count}")

    def _late_key(self, key: tuple[int, int, int | None]) -> tuple[int, int, int] | None:
        """The abandoned request a frame `key` (unit, function, byte count or None for an
        exception reply) would answer; expired ones are forgotten."""
        now = time.monotonic()
        for k in list(self._late):
            self._late[k] = [t for t in self._late[k] if t > now]
            if not self._late[k]:
                del self._late[k]
        unit, fc, n = key
        for k in self._late:
            if k[0] == unit and k[1] == fc and (n is None or k[2] == n):
                return k
        return None

    def _take_late(self, adu: Adu) -> bool:
        fc = adu.function
        key = (adu.unit, fc & 0x7F, None) if fc & 0x80 else (
            adu.unit, fc, adu.pdu[1] if len(adu.pdu) > 1 else -1)
        k = self._late_key(key) if self._late else None
        if k is None:
            return False
        self._late[k].pop(0)
        if not self._late[k]:
            del self._late[k]
        return True

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
