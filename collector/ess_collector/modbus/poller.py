"""Polling one device: its map's read plan over its gateway's connection (docs/architecture.md).

A poll always yields every block with a status: ok, timeout, exception:<code> (a Modbus
exception reply), transport (refused, reset, closed, or backing off), mismatched_reply (a reply
that does not answer the request: nothing of it is kept), bad_crc (RTU) or skipped (not
attempted before the poll's deadline). A failing block never discards the others.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache

from ess.codec import BlockData, BlockStatus, Frame
from ess.logs import event
from ess.plan import MAX_REGISTERS_PER_READ, read_plan
from ess.regmap import RegisterMap
from ess.sites import Device
from ess.wire import bits

from .demotion import UNIT, Demotions
from .errors import NoReply, RequestFailed, TakenForLate, UnansweredAfterDiscard
from .gateway import DEFAULT_PACING, Gateway, Pacing
from .pdu import Request

log = logging.getLogger(__name__)


@lru_cache(maxsize=256)
def _plan(regmap: RegisterMap, limit: int) -> tuple:
    return tuple(read_plan(regmap, limit))


def now_us() -> int:
    return time.time_ns() // 1000


class DevicePoller:
    """Reads one device's blocks through a Gateway (its own, or one shared with other units)."""

    def __init__(self, device: Device, timeout: float, reconnect_initial: float = 0.5,
                 reconnect_max: float = 30.0, *, gateway: Gateway | None = None,
                 pacing: Pacing = DEFAULT_PACING, max_registers: int = MAX_REGISTERS_PER_READ,
                 late_window: float = 1.0):
        self.device = device
        self.gateway = gateway or Gateway(
            device.host, device.port, timeout=timeout, pacing=pacing,
            reconnect_initial=reconnect_initial, reconnect_max=reconnect_max,
            late_window=late_window, site=device.site_id, name=device.name)
        self.blocks = {b.name: b for b in device.map.blocks}
        self.plan = _plan(device.map, max_registers)
        self.requests = [Request(device.unit_id, r.code, r.address, r.count) for r in self.plan]
        self.demoted = Demotions(reconnect_initial, reconnect_max)

    # back-off state lives with the connection (shared by every unit of a gateway)
    @property
    def backoff(self) -> float:
        return self.gateway.backoff

    @property
    def next_connect(self) -> float:
        return self.gateway.next_connect

    @next_connect.setter
    def next_connect(self, value: float) -> None:
        self.gateway.next_connect = value

    def close(self) -> None:
        self.gateway.close()

    async def poll(self, deadline: float) -> tuple[dict[str, BlockData], int, int]:
        """Read every block before `deadline` (monotonic); return blocks, start and end (µs).

        The start is when the device's turn on the connection came (its first request)."""
        begin = now_us()
        start = None
        regs = {name: bytearray(2 * b.words) for name, b in self.blocks.items()}
        status: dict[str, BlockData] = {}
        i, low, self._waited, self._answered = 0, False, 0, False
        if self.gateway.shared and self.demoted.active(UNIT):
            i = self._demoted_blocks(status)
        while (i < len(self.plan) and self._waited < 2
               and await self.gateway.turns.acquire(deadline, low)):
            start = start or now_us()
            try:
                i = await self._reads(i, deadline, regs, status)
            finally:
                self.gateway.turns.release()
            low = True                  # it cost the others a timeout: wait behind them
        for req in self.plan[i:]:
            status.setdefault(req.block, BlockData(BlockStatus.SKIPPED))
        blocks = {name: status.get(name) or BlockData(BlockStatus.OK, bytes(regs[name]))
                  for name in self.blocks}
        return blocks, start or begin, now_us()

    def _demoted_blocks(self, status: dict[str, BlockData]) -> int:
        """A demoted unit is not asked: every block times out."""
        for req in self.plan:
            status.setdefault(req.block, BlockData(BlockStatus.TIMEOUT))
        return len(self.plan)

    async def _reads(self, i: int, deadline: float, regs: dict[str, bytearray],
                     status: dict[str, BlockData]) -> int:
        """Requests from plan index `i` on; the index to resume at (len: done). On a shared
        connection a request that waited out its timeout ends the turn (the unit goes behind
        the others), and a second one ends the unit's poll (the rest: skipped)."""
        shared = self.gateway.shared
        while i < len(self.plan):
            req, i = self.plan[i], i + 1
            if req.block in status:         # an earlier read of this block failed
                continue
            if shared and self.demoted.active(i - 1):
                status[req.block] = BlockData(BlockStatus.TIMEOUT)
                continue
            try:
                answer = await self.gateway.read(self.requests[i - 1], deadline, self.device.name)
            except RequestFailed as exc:
                status[req.block] = BlockData(exc.status)
                if shared and isinstance(exc, NoReply | UnansweredAfterDiscard) and not (
                        exc.cut_short       # a wait the deadline cut says nothing of the unit
                        or isinstance(exc, TakenForLate)):      # nor does a unit that answers
                    self._demote(i - 1 if self._answered else UNIT, req)
                    self._waited += 1
                    return i if self._answered else self._demoted_blocks(status)
                continue
            self._answered = True
            if shared and (self.demoted.answered(i - 1) | self.demoted.answered(UNIT)):
                event(log, f"{self.device.name}: answering again", stage="poll",
                      site=self.device.site_id, device=self.device.name)
            self._store(req, answer, regs, status)
        return i

    def _demote(self, key: int, req) -> None:
        backoff = self.demoted.timed_out(key)
        what = "unit" if key == UNIT else f"read {req.address}+{req.count}"
        event(log, f"{self.device.name}: {what} timed out behind the shared connection "
              f"{self.gateway.name}; not asked for {backoff:.1f} s", stage="poll",
              level=logging.WARNING, site=self.device.site_id, device=self.device.name,
              gateway=self.gateway.name, reason="demoted", backoff_s=backoff)

    def _store(self, req, answer, regs: dict[str, bytearray],
               status: dict[str, BlockData]) -> None:
        if answer.exception is not None:
            status[req.block] = BlockData(BlockStatus.EXCEPTION, exception_code=answer.exception)
            return
        block = self.blocks[req.block]
        if block.is_bits:
            bits.set_frame_bits(regs[req.block], req.address - block.start, answer.bits)
        else:
            off = 2 * (req.address - block.start)
            regs[req.block][off:off + len(answer.data)] = answer.data

    def frame(self, blocks: dict[str, BlockData], start_us: int, end_us: int) -> Frame:
        """A frame of this device (sequence number assigned by the spool)."""
        d = self.device
        return Frame(d.site_id, d.bank_id, 0, start_us, end_us, d.map.map_id, d.map.version,
                     blocks, d.unit_id)
