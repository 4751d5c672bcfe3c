"""An adversarial Modbus device, written from scratch for the tests: frames are built and parsed
here with struct and a bitwise CRC-16, never with the project's framing, pdu, simulator or
ess.wire code, so a shared misreading of the protocol cannot hide.

One asyncio server speaks Modbus TCP (MBAP) or RTU over TCP and answers every unit id. Every
correct reply carries data unique to its (unit, read, n-th reply), recorded with the wall time it
was sent (`good`), so a test can tell that a stored block is the answer to a request of that very
poll. Misbehaving replies carry poison (registers 0xDEAD; bits with bit 0 cleared, which no good
reply has). A fault is scripted per unit: `Fault(kind, fc, occurrence)` misbehaves on the
`occurrence`-th request of function `fc` from that unit (the kinds: `_kinds`).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass

POISON = 0xDEAD
OTHER_FC = {1: 2, 2: 1, 3: 4, 4: 3}


def _crc_bitwise(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/Modbus, bit by bit (poly 0xA001 reflected, init 0xFFFF)."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


_TABLE = [_crc_bitwise(bytes([b]), 0) for b in range(256)]


def crc16(data: bytes) -> int:
    """CRC-16/Modbus with a table built from the bitwise definition."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def rtu(body: bytes) -> bytes:
    return body + struct.pack("<H", crc16(body))


def mbap(tid: int, unit: int, pdu: bytes, proto: int = 0, length: int | None = None) -> bytes:
    return struct.pack(">HHHB", tid, proto, len(pdu) + 1 if length is None else length,
                       unit) + pdu


@dataclass(frozen=True)
class Fault:
    """Misbehave (`kind`) on the `occurrence`-th request of function `fc` (and address) of a
    unit."""

    kind: str
    fc: int
    occurrence: int = 2
    addr: int | None = None     # only the read from this address


@dataclass
class Ctx:
    """One request and the device's answer material."""

    tid: int
    unit: int
    fc: int
    addr: int
    count: int
    data: bytes          # data bytes of the correct reply
    poison: bytes        # same length, poisoned

    def frame(self, dev: Device, pdu: bytes, unit: int | None = None,
              tid: int | None = None) -> bytes:
        unit = self.unit if unit is None else unit
        if dev.framing == "rtu":
            return rtu(bytes([unit]) + pdu)
        return mbap(self.tid if tid is None else tid, unit, pdu)

    def pdu(self, data: bytes, fc: int | None = None, n: int | None = None) -> bytes:
        return bytes([self.fc if fc is None else fc, len(data) if n is None else n]) + data


def _regs(ctx: Ctx, count: int) -> bytes:
    return struct.pack(f">{count}H", *([POISON] * count))


def _kinds(dev: Device, c: Ctx) -> dict:
    """kind -> a function giving the writes: bytes, (delay, bytes), "close" or "reset"."""
    good = c.frame(dev, c.pdu(c.data))
    bad = c.pdu(c.poison)
    regs = c.fc in (3, 4)
    longer = _regs(c, c.count + 1) if regs else c.poison + b"\x00"
    shorter = _regs(c, c.count - 1) if regs else c.poison[:-1]
    exc = bytes([c.fc | 0x80])
    kinds = {
        "ok": lambda: [good],
        "other_fc": lambda: [c.frame(dev, c.pdu(c.poison, fc=OTHER_FC[c.fc]))],
        "exc_other_fc": lambda: [c.frame(dev, bytes([OTHER_FC[c.fc] | 0x80, 2]))],
        "unit0": lambda: [c.frame(dev, bad, unit=0)],
        "unit255": lambda: [c.frame(dev, bad, unit=255)],
        "unit_next": lambda: [c.frame(dev, bad, unit=(c.unit + 1) % 256)],
        "bc_odd": lambda: [c.frame(dev, c.pdu(c.poison[:-1]))],
        "bc_zero": lambda: [c.frame(dev, c.pdu(b""))],
        "bc_large": lambda: [c.frame(dev, c.pdu(c.poison + b"\xde"))],
        "bc_says_more": lambda: [c.frame(dev, c.pdu(c.poison, n=len(c.poison) + 2))],
        "bc_says_less": lambda: [c.frame(dev, c.pdu(c.poison, n=len(c.poison) - 2))],
        "count_short": lambda: [c.frame(dev, c.pdu(shorter))],
        "count_long": lambda: [c.frame(dev, c.pdu(longer))],
        "padding": lambda: [c.frame(dev, c.pdu(c.poison[:-1] + bytes([c.poison[-1] | 0x80])))],
        "split": lambda: [(0.005, good[a:b]) for a, b in zip((0, 1, 2, 4, 7, 8),
                                                              (1, 2, 4, 7, 8, None))],
        "dup": lambda: [good + good],
        "trailing_noise": lambda: [good + b"\x00"],
        "dup_later": lambda: [good, (0.03, good)],
        "close_mid": lambda: [good[:len(good) // 2], (0.01, b""), "close"],
        "close_after": lambda: [good, (0.0, b""), "close"],
        "reset": lambda: [good[:3], (0.01, b""), "reset"],
        "hang": lambda: [],
        "late": lambda: [("late", c.frame(dev, bad))],
        "late_same_conn": lambda: [(0.45, c.frame(dev, bad))],     # after the timeout
        "dup_held": lambda: [good, ("late", good)],     # again before the next reply
        "exc_long": lambda: [c.frame(dev, exc + b"\x02\x00")],
        "exc_short": lambda: [c.frame(dev, exc)],
        **{f"exc{code}": (lambda code=code: [c.frame(dev, exc + bytes([code]))])
           for code in (1, 2, 3, 4, 6, 11)},
    }
    return kinds | (_rtu_kinds(dev, c, good, bad) if dev.framing == "rtu"
                    else _mbap_kinds(c, good, bad))


def _mbap_kinds(c: Ctx, good: bytes, bad: bytes) -> dict:
    stale = mbap((c.tid - 1) % 0x10000, c.unit, bad)
    return {
        "tid0": lambda: [mbap(0, c.unit, bad)],
        "tid_prev": lambda: [mbap((c.tid - 1) % 0x10000, c.unit, bad)],
        "tid_next": lambda: [mbap((c.tid + 1) % 0x10000, c.unit, bad)],
        "proto1": lambda: [mbap(c.tid, c.unit, bad, proto=1)],
        "len0": lambda: [mbap(c.tid, c.unit, bad, length=0)],
        "len1": lambda: [mbap(c.tid, c.unit, bad, length=1)],
        "len255": lambda: [mbap(c.tid, c.unit, bad + b"\x00" * (254 - len(bad)), length=255)],
        "len_short": lambda: [mbap(c.tid, c.unit, bad, length=len(bad))],       # one byte left over
        "len_long_pad": lambda: [mbap(c.tid, c.unit, bad + b"\x00", length=len(bad) + 2)],
        "len_long": lambda: [mbap(c.tid, c.unit, bad, length=len(bad) + 2)],    # never completed
        "stale_first": lambda: [stale + good],
        "stale_after": lambda: [good + stale],
        "garbage": lambda: [b"\x00\x01\x02" + good],
        "exc_mbap_short": lambda: [mbap(c.tid, c.unit, bytes([c.fc | 0x80, 2]), length=2)
                           + b"\x02"],
    }


def _rtu_kinds(dev: Device, c: Ctx, good: bytes, bad: bytes) -> dict:
    other = rtu(bytes([c.unit]) + c.pdu(c.data, fc=OTHER_FC[c.fc]))
    flip = bytearray(good)
    flip[-1] ^= 0x5A
    exc = rtu(bytes([c.unit, c.fc | 0x80, 4]))
    return {
        "bad_crc": lambda: [bytes(flip)],
        "crc_of_other": lambda: [good[:-2] + other[-2:]],
        "truncated": lambda: [good[:-3]],
        "other_unit": lambda: [rtu(bytes([(c.unit + 1) % 256]) + bad)],
        "exc_bad_crc": lambda: [exc[:-1] + bytes([exc[-1] ^ 0xFF])],
        "noise": lambda: [b"\x00" + good],
        "noise_ff": lambda: [b"\xff" + good],
        "stale_first": lambda: [rtu(bytes([c.unit]) + bad) + good],
        "stale_after": lambda: [good + rtu(bytes([c.unit]) + bad)],
        "other_first": lambda: [rtu(bytes([c.unit]) + c.pdu(c.poison, fc=OTHER_FC[c.fc])) + good],
    }


class Device:
    """The device; `good[(unit, fc, addr, count)]` lists (sent at, µs; data) of correct replies,
    `requests` every request as (unit, fc, addr, count, kind)."""

    def __init__(self, framing: str = "tcp", faults: dict[int, list[Fault]] | None = None):
        self.framing = framing
        self.faults = faults or {}
        self.seen: dict[tuple, int] = {}
        self.good: dict[tuple, list[tuple[int, bytes]]] = {}
        self.held: dict[int, bytes] = {}
        self.requests: list[tuple] = []
        self.bad_requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        return self.server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    # ---- answers ------------------------------------------------------------------------
    def _data(self, unit: int, fc: int, addr: int, count: int) -> tuple[bytes, bytes]:
        """(correct data bytes, poisoned data bytes) of the n-th reply to this read."""
        n = len(self.good.get((unit, fc, addr, count), ()))
        if fc in (3, 4):
            base = unit * 1000 + fc * 100 + 7 * n + addr
            return (struct.pack(f">{count}H", *((base + 3 * k + 1) & 0xFFFF
                                                for k in range(count))),
                    struct.pack(f">{count}H", *[POISON] * count))
        pattern = 1 | ((37 * n + 11 * unit + addr) % (1 << (count - 1))) << 1
        poison = pattern & ~1
        size = -(-count // 8)
        return pattern.to_bytes(size, "little"), poison.to_bytes(size, "little")

    def _kind(self, unit: int, fc: int, key: tuple) -> str:
        self.seen[key] = self.seen.get(key, 0) + 1
        for f in self.faults.get(unit, ()):
            if f.fc == fc and f.occurrence == self.seen[key] and f.addr in (None, key[2]):
                return f.kind
        return "ok"

    def _parse(self, raw: bytes) -> tuple[int, int, int, int, int] | None:
        if self.framing == "rtu":
            if crc16(raw) != 0:
                self.bad_requests.append(raw)
                return None
            unit, fc, addr, count = struct.unpack(">BBHH", raw[:6])
            return 0, unit, fc, addr, count
        tid, proto, length, unit, fc, addr, count = struct.unpack(">HHHBBHH", raw)
        if proto != 0 or length != 6:
            self.bad_requests.append(raw)
        return tid, unit, fc, addr, count

    async def _answer(self, raw: bytes, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection was closed."""
        req = self._parse(raw)
        if req is None:
            return True
        tid, unit, fc, addr, count = req
        key = (unit, fc, addr, count)
        kind = self._kind(unit, fc, key)
        data, poison = self._data(unit, fc, addr, count)
        self.requests.append((*key, kind))
        ctx = Ctx(tid, unit, fc, addr, count, data, poison)
        writes = _kinds(self, ctx)[kind]()
        held = self.held.pop(unit, b"")     # a late reply goes out before this one, in the
        if held and writes and isinstance(writes[0], bytes):        # same segment
            writes[0] = held + writes[0]
        elif held:
            writer.write(held)
        if kind in ("ok", "split", "dup", "dup_later", "stale_first", "stale_after",
                    "close_after", "trailing_noise", "dup_held", "other_first"):
            self.good.setdefault(key, []).append((time.time_ns() // 1000, data))
        for w in writes:
            if not await self._write(w, writer, unit):
                return False
        await writer.drain()
        return True

    async def _write(self, w, writer: asyncio.StreamWriter, unit: int) -> bool:
        if w == "close":
            writer.close()
            return False
        if w == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if isinstance(w, tuple) and w[0] == "late":
            self.held[unit] = w[1]
            return True
        if isinstance(w, tuple):
            await writer.drain()
            await asyncio.sleep(w[0])
            w = w[1]
        writer.write(w)
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        size = 8 if self.framing == "rtu" else 12
        buf = b""
        try:
            while chunk := await reader.read(4096):
                buf += chunk
                while len(buf) >= size:
                    raw, buf = buf[:size], buf[size:]
                    if not await self._answer(raw, writer):
                        return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
