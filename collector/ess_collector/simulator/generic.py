"""Plausible registers for any map: each column a smooth, deterministic function of (seed, bank, t).

A value sits inside the column's range when it has one, counters (unscaled 32/64-bit unsigned
integers) grow with t, bits change now and then (a column a bit alarm reads stays 0);
scale-factor registers hold a fixed power of ten; values never hit the map's sentinels.
`registers(t)` gives the frame words per block.
"""

from __future__ import annotations

import math
import struct

from ess.regmap import Field, RegisterMap
from ess.regmap.model import BYTE_ORDERS
from ess.wire.bits import bit_position

from .model import _EPOCH, _mix, _unit

SCALE_FACTOR = -1            # every scale-factor register serves 10^-1
_PACK = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q",
         "uint64": ">Q", "float32": ">f", "float64": ">d"}


def _words(f: Field, value: float) -> list[int]:
    """The registers of `value` as the device sends them in the field's byte order."""
    fmt = _PACK[f.type]
    if f.type.startswith(("int", "uint")):
        bits = 8 * struct.calcsize(fmt)
        signed = f.type[0] == "i"
        lo, hi = (-(1 << bits - 1), (1 << bits - 1) - 1) if signed else (0, (1 << bits) - 1)
        value = min(max(int(value), lo), hi)
    data = struct.pack(fmt, value)
    words = [data[i:i + 2] for i in range(0, len(data), 2)]
    little, swap = BYTE_ORDERS[f.byte_order]
    if little:
        words.reverse()
    return [int.from_bytes(w[::-1] if swap else w, "big") for w in words]


class MapModel:
    """One simulated device of any map."""

    def __init__(self, bank: int, seed: int, regmap: RegisterMap):
        self.bank, self.seed, self.map = bank, seed, regmap
        self.sf = {f.scale_factor for f in regmap.fields() if f.scale_factor is not None}
        # columns a bit alarm reads serve 0 (no alarm); the faults file's `set` raises one
        self.quiet = {a.column for a in regmap.alarms if not a.is_threshold}

    def value(self, f: Field, t: int) -> float:
        """The physical value of one column at t."""
        if f.column in self.quiet:
            return 0.0
        key = _mix(self.seed, self.bank, *f.column.encode())
        if f.type in ("bits", "bit"):
            return float(_unit(key, t // 60) < 0.3)
        if f.type in ("uint32", "uint64") and f.is_integer and not f.has_range:
            return float((key % 1000) * 1000 + (t - _EPOCH) * (1 + key % 7))
        wave = math.sin(2 * math.pi * t / (300 + key % 900) + key % 628 / 100)
        if f.has_range:
            mid, half = (f.min + f.max) / 2, (f.max - f.min) / 2
            return mid + 0.8 * half * wave
        base = {"int16": 300, "uint16": 600}.get(f.type, 5000)
        return base * (0.5 + 0.4 * wave) * (1 if f.type[0] == "u" else math.copysign(1, wave))

    def _raw_value(self, f: Field, t: int) -> float:
        v = self.value(f, t)
        if f.scale_factor is not None:
            return round(v / 10.0 ** SCALE_FACTOR)
        if f.type.startswith("float"):
            return v
        return round(v / f.scale)

    def registers(self, t: int) -> dict[str, list[int]]:
        """Frame words of every block during second `t`."""
        out = {}
        for b in self.map.blocks:
            words = [0] * b.words
            for r in b.registers:
                if r.unused and r.address in self.sf:
                    words[r.address - b.start] = SCALE_FACTOR & 0xFFFF
                for f in r.fields:
                    k = f.address - b.start
                    if f.address in self.sf and not b.is_bits:
                        words[k] = SCALE_FACTOR & 0xFFFF
                        continue
                    if b.is_bits or f.type in ("bits", "bit"):
                        on = self.value(f, t) != f.invert
                        pos, bit = bit_position(k) if b.is_bits else (k, f.bit)
                        words[pos] |= int(on) << bit
                        continue
                    w = _words(f, self._raw_value(f, t))
                    if f.sentinel is not None and _join(w, f) == f.sentinel:
                        w = _words(f, self._raw_value(f, t) - 1)
                    words[k:k + len(w)] = w
            out[b.name] = words
        return out


def _join(words: list[int], f: Field) -> int:
    little, swap = BYTE_ORDERS[f.byte_order]
    ws = [((w >> 8) | (w << 8)) & 0xFFFF if swap else w for w in words]
    value = 0
    for w in (reversed(ws) if little else ws):
        value = value << 16 | w
    return value
