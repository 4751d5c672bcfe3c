"""A Modbus TCP endpoint (host and port) and its one connection, used by one device or shared by
the unit ids behind a gateway: transaction ids, pacing, turns, resets and reconnect back-off.

* Transaction ids (MBAP) count up per gateway, skip 0 and do not restart when the connection is
  reopened, so a reply from before a reconnect can never carry the id of a request after it.
* Pacing: no request within `pause_after_connect` s of connecting, nor within
  `pause_between_requests` s of the previous exchange on this connection (any unit); a pause
  that would end after the poll's deadline skips the request instead.
* Turns: a unit polls all its blocks in one turn (so its registers are read close together);
  after a timeout on a shared connection the unit waits behind every other unit for the rest
  (`turns.Turns`), and is demoted (`demotion.Demotions`), so a hung unit costs the others at
  most one timeout per tick and one reconnect per probe.
* Resets: the connection is closed after any failed request but a clean "not ours" discard:
  a transport error, a reply that breaks the protocol, a bad CRC, and a timeout (some devices and
  gateways stamp a late reply with the transaction and unit id of whatever request is
  outstanding when it comes; a closed connection cannot carry it). It is reopened at the next
  request: at once if the closed connection had carried an accepted reply (or, shared, closed
  for one unit's timeout: that unit is demoted instead), or if it is the first connection to
  fail since the last accepted reply (so one bad reply to the first request of a connection
  costs that block, not the rest of the poll), else after a back-off doubling from
  `reconnect.initial` to `reconnect.max` (also after a failed connect); an accepted reply clears
  the back-off.
* RTU late replies (`late.LateReplies`) are kept per gateway, across reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ess.logs import event

from .connection import Connection
from .errors import LinkDown, NoReply, RequestFailed, Skipped, UnansweredAfterDiscard
from .framing import Adu
from .late import LateReplies
from .pdu import Answer, Request
from .turns import Turns

log = logging.getLogger(__name__)
LOG_EVERY = 60.0      # seconds between repeats of the same discard/mismatch line per device


@dataclass(frozen=True)
class Pacing:
    """How a connection is used (docs: collector/README.md, gateway settings)."""

    framing: str = "tcp"
    pause_between_requests: float = 0.0
    pause_after_connect: float = 0.0


DEFAULT_PACING = Pacing()


class Gateway:
    """One endpoint's connection; `read(req, deadline, who)` runs one request on it."""

    def __init__(self, host: str, port: int, *, timeout: float, pacing: Pacing = DEFAULT_PACING,
                 reconnect_initial: float = 0.5, reconnect_max: float = 30.0,
                 late_window: float = 1.0, shared: bool = False, site: str = "",
                 name: str | None = None):
        self.host, self.port, self.timeout, self.pacing = host, port, timeout, pacing
        self.backoff_initial, self.backoff_max = reconnect_initial, reconnect_max
        self.late, self.shared, self.site = LateReplies(late_window), shared, site
        self.name = name or f"{host}:{port}"
        self.turns = Turns()
        self.conn: Connection | None = None
        self.backoff = 0.0          # 0: connect right away
        self.retried = False        # a failed connection was reopened at once since the last
                                    # accepted reply
        self.next_connect = 0.0     # monotonic
        self.connected_once = False
        self.ready_at = 0.0         # monotonic: pacing allows the next request from then
        self.counts = {"discarded": 0, "resets": 0}
        self._tid = 0
        self._said: dict[tuple[str, str], list[float]] = {}
        self._who = ""

    def take_counts(self) -> dict[str, int]:
        """Replies discarded and connection resets since the last call."""
        out, self.counts = self.counts, {"discarded": 0, "resets": 0}
        return out

    # ---- connection -------------------------------------------------------------------------
    def close(self, why: str = "closed") -> None:
        if self.conn is not None:
            self.conn.close(why)
            self.conn = None

    def _next_tid(self) -> int:
        self._tid = self._tid % 0xFFFF + 1          # 1..65535, never 0
        return self._tid

    def _back_off(self, why: str, who: str) -> None:
        self.backoff = min(max(self.backoff * 2, self.backoff_initial), self.backoff_max)
        self.next_connect = time.monotonic() + self.backoff
        event(log, f"{self.name}: {why}; retry in {self.backoff:.1f} s", stage="poll",
              level=logging.WARNING, site=self.site, device=who, gateway=self.name, error=why,
              backoff_s=self.backoff)

    def reset(self, why: str, who: str = "", unit_fault: bool = False) -> None:
        """Close the connection; reopen at once if it was healthy (or, shared, the fault was
        one unit's: a timeout, which demotes that unit) or is the first to fail since the last
        accepted reply, else after the back-off."""
        healthy = (self.conn is not None and self.conn.accepted > 0) or (
            unit_fault and self.shared)
        self.close(why)
        self.counts["resets"] += 1
        if not healthy and not self.retried:
            healthy = self.retried = True
        if healthy:
            self.next_connect = 0.0
            event(log, f"{self.name}: connection reset ({why})", stage="poll",
                  level=logging.WARNING, site=self.site, device=who, gateway=self.name,
                  reason="reset", error=why)
        else:
            self._back_off(f"connection reset ({why}) before any reply was accepted", who)

    async def _connect(self, deadline: float, who: str) -> None:
        """Open the connection if needed; LinkDown when it cannot be (or is backing off)."""
        if self.conn is not None and self.conn.closed is None:
            if self.conn.tidy():
                return
            self.reset("bytes that are not a frame arrived between requests", who)
        if self.conn is not None:           # closed by the device
            self.reset(self.conn.closed or "closed", who)
        if time.monotonic() < self.next_connect:
            raise LinkDown(f"backing off ({self.backoff:.1f} s)")
        budget = min(self.timeout, deadline - time.monotonic())
        if budget <= 0:
            raise Skipped("no time left to connect")
        try:
            self.conn = await Connection.open(self.host, self.port, self.pacing.framing, budget,
                                              self.late, self._discarded)
        except (OSError, TimeoutError) as exc:       # refused, unreachable, timed out
            why = str(exc) or "connection timed out"
            self._back_off(f"cannot connect ({why})", who)
            raise LinkDown(why) from None
        self.ready_at = time.monotonic() + self.pacing.pause_after_connect
        if self.backoff or not self.connected_once:
            event(log, f"{self.name}: connected", stage="poll", site=self.site, device=who,
                  gateway=self.name, framing=self.pacing.framing)
        self.connected_once = True

    async def _pace(self, deadline: float) -> None:
        wait = self.ready_at - time.monotonic()
        if wait > 0:
            if time.monotonic() + wait >= deadline:
                raise Skipped("the pause before the next request ends after the deadline")
            await asyncio.sleep(wait)

    # ---- one request ------------------------------------------------------------------------
    async def read(self, req: Request, deadline: float, who: str = "") -> Answer:
        """Run `req` (the caller holds the turn); RequestFailed subclasses say why not."""
        self._who = who
        await self._connect(deadline, who)
        await self._pace(deadline)
        budget = min(self.timeout, deadline - time.monotonic())
        if budget <= 0:
            raise Skipped("no time left for the request")
        conn = self.conn
        try:
            answer = await conn.exchange(req, self._next_tid(), budget)
        except RequestFailed as exc:
            exc.cut_short = budget < self.timeout       # the deadline, not the device, ended it
            self._failed(exc, req, who)
            raise
        finally:
            self.ready_at = max(self.ready_at,
                                time.monotonic() + self.pacing.pause_between_requests)
        self.backoff, self.retried = 0.0, False
        return answer

    def _failed(self, exc: RequestFailed, req: Request, who: str) -> None:
        if exc.reason in ("mismatched_reply", "bad_crc"):
            self._say(who, exc.reason, f"{who}: {exc.reason} to {req.describe()}: {exc}",
                      request=req.describe())
        if exc.reset:
            self.reset(f"{exc.reason}: {exc}", who,
                       unit_fault=isinstance(exc, NoReply | UnansweredAfterDiscard))

    def _discarded(self, adu: Adu, why: str) -> None:
        self.counts["discarded"] += 1
        self._say(self._who, "discarded", f"{self.name}: reply discarded ({why}): "
                  f"{adu.raw[:32].hex()}", unit=adu.unit)

    def _say(self, who: str, kind: str, message: str, **fields) -> None:
        """Log `message` the first time, then at most once a minute per device and kind with
        the number of repeats in between."""
        now = time.monotonic()
        last = self._said.setdefault((who, kind), [-1e9, 0])
        if now - last[0] < LOG_EVERY:
            last[1] += 1
            return
        event(log, message, stage="poll", level=logging.WARNING, site=self.site, device=who,
              gateway=self.name, reason=kind, repeats=last[1], **fields)
        self._said[(who, kind)] = [now, 0]
