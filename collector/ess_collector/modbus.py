"""Polling one device: the map's read plan over one pymodbus AsyncModbusTcpClient connection.

A poll always yields every block with a status: ok, timeout, exception:<code> (the device
answered with a Modbus exception), transport (connection refused, reset or closed) or skipped
(not attempted before the poll's deadline). A failing block never discards the others. Lost
connections are re-established with exponential back-off up to a cap; after a timeout the
connection is re-opened so that a late reply cannot be taken for the next request's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import lru_cache

from ess.codec import BlockData, BlockStatus, Frame
from ess.logs import event
from ess.plan import read_plan
from ess.sites import Device
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)

log = logging.getLogger(__name__)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class RawInputRegisters(ReadInputRegistersResponse):
    """FC4 response keeping the register bytes as received (big-endian words, no unpacking)."""

    def decode(self, data: bytes) -> None:
        n = data[0]
        if n >= len(data):
            raise ModbusIOException(f"byte_count {n} > length of packet {len(data)}",
                                    function_code=self.function_code)
        self.raw = bytes(data[1:1 + n])
        self.count = n // 2


class RawHoldingRegisters(ReadHoldingRegistersResponse):
    """FC3 response kept as received, like RawInputRegisters."""

    decode = RawInputRegisters.decode


def pack_bits(words: bytearray, offset: int, bits) -> None:
    """Set bits `offset`.. of a bit block's frame words (big-endian bytes), LSB first per word."""
    for k, on in enumerate(bits):
        if on:
            pos = offset + k
            words[2 * (pos // 16) + (1 - pos % 16 // 8)] |= 1 << (pos % 8)


@lru_cache(maxsize=64)
def _plan(regmap):
    return tuple(read_plan(regmap))


def now_us() -> int:
    return time.time_ns() // 1000


class DevicePoller:
    """Reads one device's blocks; keeps its connection and reconnect back-off."""

    def __init__(self, device: Device, timeout: float, reconnect_initial: float = 0.5,
                 reconnect_max: float = 30.0):
        self.device = device
        self.timeout = timeout
        self.plan = _plan(device.map)
        self.blocks = {b.name: b for b in device.map.blocks}
        self.backoff_initial, self.backoff_max = reconnect_initial, reconnect_max
        self.backoff = 0.0          # 0: connect right away
        self.next_connect = 0.0     # monotonic
        self.client: AsyncModbusTcpClient | None = None
        self.connected_once = False
        self._reading: asyncio.Task | None = None
        self._lost = False

    # ---- connection ---------------------------------------------------------------------
    def _close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _failed_connect(self, why: str) -> None:
        self._close()
        self.backoff = min(max(self.backoff * 2, self.backoff_initial), self.backoff_max)
        self.next_connect = time.monotonic() + self.backoff
        event(log, f"{self.device.name}: cannot connect ({why}); retry in {self.backoff:.1f} s",
              stage="poll", level=logging.WARNING, site=self.device.site_id,
              device=self.device.name, error=why, backoff_s=self.backoff)

    async def _connect(self, budget: float) -> bool:
        if self.client is not None and self.client.connected:
            return True
        if time.monotonic() < self.next_connect:
            return False
        self._close()
        client = AsyncModbusTcpClient(self.device.host, port=self.device.port,
                                      timeout=self.timeout, retries=0, reconnect_delay=0,
                                      name=self.device.name,
                                      trace_connect=self._on_connect_change)
        client.register(RawInputRegisters)
        client.register(RawHoldingRegisters)
        try:
            async with self._cut(budget):
                ok = await client.connect()
        except (OSError, ModbusException) as exc:     # TimeoutError is an OSError
            ok, why = False, str(exc) or "connection timed out"
        else:
            why = "connection refused or timed out"
        if not ok:
            client.close()
            self._failed_connect(why)
            return False
        self.client = client
        if self.backoff or not self.connected_once:
            event(log, f"{self.device.name}: connected", stage="poll", site=self.device.site_id,
                  device=self.device.name)
        self.backoff, self.connected_once = 0.0, True
        return True

    def close(self) -> None:
        self._close()

    def _on_connect_change(self, connected: bool) -> None:
        """pymodbus does not fail a request whose connection closes: cancel it ourselves."""
        if not connected and self._reading is not None and not self._reading.done():
            self._lost = True
            self._reading.cancel()

    # ---- one poll ---------------------------------------------------------------------------
    def _cut(self, budget: float) -> asyncio.Timeout:
        """A deadline for one connect or request when less than `timeout` is left.

        pymodbus (3.16) has one timeout per client (its `timeout` argument) and no per-request
        one, so a shorter budget is enforced around the call; the connection is re-opened after
        any timeout, so an abandoned request cannot answer the next one.
        """
        return asyncio.timeout(budget if budget < self.timeout else None)

    async def _read(self, address: int, count: int, budget: float, function: str = "input"):
        self._reading, self._lost = asyncio.current_task(), False
        read = {"input": self.client.read_input_registers,
                "holding": self.client.read_holding_registers,
                "coil": self.client.read_coils,
                "discrete": self.client.read_discrete_inputs}[function]
        try:
            async with self._cut(budget):
                return await read(address, count=count, device_id=self.device.unit_id)
        except asyncio.CancelledError:
            if not self._lost:
                raise
            self._reading.uncancel()
            raise ConnectionException("connection closed by the device") from None
        finally:
            self._reading = None

    async def poll(self, deadline: float) -> tuple[dict[str, BlockData], int, int]:
        """Read every block before `deadline` (monotonic); return blocks, start and end (µs)."""
        start = now_us()
        regs = {name: bytearray(2 * b.words) for name, b in self.blocks.items()}
        status: dict[str, BlockData] = {}
        reconnects = 0
        for req in self.plan:
            if req.block in status:         # an earlier read of this block failed
                continue
            budget = deadline - time.monotonic()
            if budget <= 0:
                status[req.block] = BlockData(BlockStatus.SKIPPED)
                continue
            if not await self._connect(budget):
                status[req.block] = BlockData(BlockStatus.TRANSPORT)
                continue
            try:
                resp = await self._read(req.address, req.count, budget, req.function)
            except (TimeoutError, ModbusIOException):
                status[req.block] = BlockData(BlockStatus.TIMEOUT)
                self._close()              # a late reply must not answer the next request
                self.next_connect = 0.0
                continue
            except (ConnectionException, OSError, ModbusException) as exc:
                status[req.block] = BlockData(BlockStatus.TRANSPORT)
                self._close()
                if reconnects == 0:         # one immediate retry per poll, then back off
                    reconnects += 1
                    self.next_connect = 0.0
                else:
                    self._failed_connect(str(exc) or type(exc).__name__)
                continue
            if resp.isError():
                status[req.block] = BlockData(BlockStatus.EXCEPTION,
                                              exception_code=resp.exception_code)
                continue
            if self.blocks[req.block].is_bits:
                if len(resp.bits) < req.count:
                    status[req.block] = BlockData(BlockStatus.TRANSPORT)
                    continue
                pack_bits(regs[req.block], req.address - self.blocks[req.block].start,
                          resp.bits[:req.count])
                continue
            raw = getattr(resp, "raw", None)
            if raw is None or len(raw) != 2 * req.count:
                status[req.block] = BlockData(BlockStatus.TRANSPORT)
                continue
            off = 2 * (req.address - self.blocks[req.block].start)
            regs[req.block][off:off + len(raw)] = raw
        blocks = {name: status.get(name) or BlockData(BlockStatus.OK, bytes(regs[name]))
                  for name in self.blocks}
        return blocks, start, now_us()

    def frame(self, blocks: dict[str, BlockData], start_us: int, end_us: int) -> Frame:
        """A frame of this device (sequence number assigned by the spool)."""
        d = self.device
        return Frame(d.site_id, d.bank_id, 0, start_us, end_us, d.map.map_id, d.map.version,
                     blocks, d.unit_id)
