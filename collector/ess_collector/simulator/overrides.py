"""A column served with a given value (the faults file's `kind: set`): raise and clear an alarm
bit, or push a value over a threshold.

The value is the one stored (docs/data-spec.md): the registers get it divided by the scale (or
10^sf), in the column's type and byte order, and an inverted register gets 0 and 1 swapped
back; `bit` sets (value not 0) or clears one bit of an integer column.
"""

from __future__ import annotations

import struct

import numpy as np
from ess.regmap import Block, Field, RegisterMap
from ess.regmap.model import BYTE_ORDERS, INTEGER_TYPES

from .generic import _PACK, _words

SETTABLE = INTEGER_TYPES | {"float32", "float64", "bit", "bits"}


def targets(regmap: RegisterMap, column: str, rack: int | None, bit: int | None
            ) -> list[tuple[Block, Field]]:
    """The (block, field) pairs a `set` fault writes; ValueError says why there are none."""
    out = [(b, f) for b in regmap.blocks for r in b.registers for f in r.fields
           if f.column == column and (rack is None or f.rack == rack)]
    if not out:
        where = f" of rack {rack}" if rack is not None else ""
        raise ValueError(f"map {regmap.map_id} has no column {column!r}{where}")
    f = out[0][1]
    if f.type not in SETTABLE:
        raise ValueError(f"column {column!r} is {f.type}, which a fault cannot set")
    if bit is not None and (f.type not in INTEGER_TYPES or bit >= 16 * f.width):
        raise ValueError(f"column {column!r} ({f.type}) has no bit {bit}")
    return out


def _read(f: Field, words: list[int]) -> int:
    """The integer the words hold (the inverse of generic._words)."""
    little, swap = BYTE_ORDERS[f.byte_order]
    parts = [(w & 0xFFFF).to_bytes(2, "big") for w in words]
    parts = [p[::-1] if swap else p for p in parts]
    return struct.unpack(_PACK[f.type], b"".join(parts[::-1] if little else parts))[0]


def _with_bit(f: Field, current: int, bit: int, on: bool) -> int:
    """`current` with one bit set or cleared, in the field's signedness."""
    bits = 16 * f.width
    u = current & ((1 << bits) - 1)
    u = u | 1 << bit if on else u & ~(1 << bit)
    return u - (1 << bits) if f.type.startswith("int") and u >= 1 << (bits - 1) else u


def _raw(f: Field, block: Block, value: float, stores: dict[str, np.ndarray],
         regmap: RegisterMap) -> float:
    """The raw number behind a stored value (scale, SunSpec scale factor, inversion)."""
    if f.invert and value in (0, 1):
        value = 1 - value
    if f.scale_factor is not None:
        sfb = regmap.locate(block.function, f.scale_factor)
        sf = int(np.uint16(stores[sfb.name][f.scale_factor - sfb.start]).view(np.int16))
        value = value / 10.0 ** sf
    elif f.scale != 1:
        value = value / f.scale
    return value if f.type.startswith("float") else round(value)


def write(stores: dict[str, np.ndarray], block: Block, f: Field, value: float, bit: int | None,
          regmap: RegisterMap) -> None:
    """Write `value` of field `f` into `stores[block.name]` (an array the caller may change)."""
    arr, i = stores[block.name], f.address - block.start
    if block.is_bits:
        arr[i] = int(bool(value)) ^ int(f.invert)
        return
    if f.type in ("bit", "bits"):
        on = bool(value) ^ f.invert
        arr[i] = (int(arr[i]) | 1 << f.bit) if on else (int(arr[i]) & ~(1 << f.bit) & 0xFFFF)
        return
    if bit is not None:
        raw = _with_bit(f, _read(f, [int(w) for w in arr[i:i + f.width]]), bit, bool(value))
    else:
        raw = _raw(f, block, value, stores, regmap)
    arr[i:i + f.width] = _words(f, raw)
