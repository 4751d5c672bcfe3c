"""A misbehaving Modbus device on a real socket: serves a Simulator's registers (unit id k =
bank k, like a gateway) over MBAP or RTU framing, and misbehaves on cue, the ways field devices
and gateways do. Frames are built here by hand (struct), not with the collector's code.

    dev = Misbehaving(Simulator(3), framing="tcp")
    port = await dev.start()
    dev.inject("function", unit=1, address=500)      # the next read of 500 from unit 1
    ...
    dev.close()

Every misbehaving reply carries POISON in its registers, so a test can tell that nothing of it
was stored. Kinds:
  function      reply with function code 3 (holding registers) instead of the request's
  tid           reply with transaction id + 1 (MBAP)
  tid0          reply with transaction id 0 (MBAP)
  unit          reply from another unit id
  byte_count    byte count field one register short of the data that follows
  count         a well-formed reply with one register fewer than requested
  late          no reply in time; it comes (poisoned) just before the reply to the next request
  restamp       no reply in time; it comes (poisoned) just before the reply to the next request
                on the same connection, stamped with that request's transaction id, unit id and
                shape (as pymodbus' server does with a slow reply): only a reset can keep it out
  extra_first   a stale frame (poisoned; old tid) and then the correct reply, in one write
  extra_after   the correct reply and then a stale frame (poisoned; old tid), in one write
  bad_crc       the correct reply with its CRC broken (RTU)
  hang          never answer this request
"""

from __future__ import annotations

import asyncio
import struct
import time

from ess.wire.crc16 import with_crc

POISON = 0xDEAD
_MBAP = struct.Struct(">HHHB")


class Misbehaving:
    """The device; `requests` logs (unit, function, address, count) of every request."""

    def __init__(self, sim, framing: str = "tcp", host: str = "127.0.0.1"):
        self.sim, self.framing, self.host = sim, framing, host
        self.faults: list[list] = []        # [kind, unit, address or None, times left]
        self.requests: list[tuple[int, int, int, int]] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    def inject(self, kind: str, unit: int, address: int | None = None, times: int = 1) -> None:
        self.faults.append([kind, unit, address, times])

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._serve, self.host, port)
        return self.server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def _fault(self, unit: int, address: int) -> str | None:
        for f in self.faults:
            if f[1] == unit and f[2] in (None, address) and f[3] > 0:
                f[3] -= 1
                return f[0]
        return None

    # ---- frames -----------------------------------------------------------------------------
    def _frame(self, tid: int, unit: int, pdu: bytes) -> bytes:
        if self.framing == "rtu":
            return with_crc(bytes([unit]) + pdu)
        return _MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu

    def _data(self, unit: int, fc: int, address: int, count: int) -> bytes | int:
        """Correct reply data bytes, or an exception code."""
        function = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}[fc]
        block = self.sim.map.locate(function, address)
        if block is None or unit not in self.sim.models or address + count > block.end:
            return 2
        values = self.sim.stores(unit, int(time.time()))[block.name]
        part = values[address - block.start:address - block.start + count]
        if block.is_bits:
            out = bytearray(-(-count // 8))
            for k, on in enumerate(part):
                out[k >> 3] |= int(on) << (k & 7)
            return bytes(out)
        return part.astype(">u2").tobytes()

    def replies(self, tid: int, unit: int, fc: int, address: int, count: int
                ) -> tuple[list[bytes], str | None]:
        """The writes answering one request (each a bytes object), and the fault applied."""
        data = self._data(unit, fc, address, count)
        if isinstance(data, int):
            return [self._frame(tid, unit, bytes([fc | 0x80, data]))], None
        kind = self._fault(unit, address)
        good = self._frame(tid, unit, bytes([fc, len(data)]) + data)
        poison = (POISON.to_bytes(2, "big") * len(data))[:len(data)]
        bad = {"function": lambda: self._frame(tid, unit, bytes([3, len(poison)]) + poison),
               "tid": lambda: self._frame(tid + 1, unit, bytes([fc, len(poison)]) + poison),
               "tid0": lambda: self._frame(0, unit, bytes([fc, len(poison)]) + poison),
               "unit": lambda: self._frame(tid, unit + 1, bytes([fc, len(poison)]) + poison),
               "byte_count": lambda: self._frame(tid, unit, bytes([fc, len(poison) - 2])
                                                 + poison),
               "count": lambda: self._frame(tid, unit, bytes([fc, len(poison) - 2])
                                            + poison[:-2])}
        if kind in bad:
            return [bad[kind]()], kind
        stale = self._frame((tid - 7) % 0x10000, unit, bytes([fc, len(poison)]) + poison)
        if kind == "extra_first":
            return [stale + good], kind
        if kind == "extra_after":
            return [good + stale], kind
        if kind == "bad_crc":
            return [good[:-2] + bytes([good[-2] ^ 0xFF, good[-1]])], kind
        if kind == "late":      # held back until the next request
            return [self._frame(tid, unit, bytes([fc, len(poison)]) + poison)], kind
        if kind in ("hang", "restamp"):
            return [], kind
        return [good], None

    # ---- serving ----------------------------------------------------------------------------
    def _cut_request(self, buf: bytearray) -> tuple[int, int, int, int, int] | None:
        size = 8 if self.framing == "rtu" else 12
        if len(buf) < size:
            return None
        raw = bytes(buf[:size])
        del buf[:size]
        if self.framing == "rtu":
            unit, fc, address, count = struct.unpack(">BBHH", raw[:6])
            return 0, unit, fc, address, count
        tid, _, _, unit = _MBAP.unpack_from(raw)
        fc, address, count = struct.unpack(">BHH", raw[7:])
        return tid, unit, fc, address, count

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        buf, held = bytearray(), None
        try:
            while chunk := await reader.read(4096):
                buf += chunk
                while (req := self._cut_request(buf)) is not None:
                    tid, unit, fc, address, count = req
                    self.requests.append((unit, fc, address, count))
                    writes, kind = self.replies(*req)
                    if held is not None:        # the late reply comes first
                        if held == b"restamp":
                            good = self._data(unit, fc, address, count)
                            held = self._frame(tid, unit, bytes([fc, len(good)]) + (
                                POISON.to_bytes(2, "big") * len(good))[:len(good)])
                        writer.write(held)
                        await writer.drain()
                        await asyncio.sleep(0.005)
                        held = None
                    if kind == "late":
                        held, writes = writes[0], []
                    elif kind == "restamp":
                        held = b"restamp"
                    for w in writes:
                        writer.write(w)
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
