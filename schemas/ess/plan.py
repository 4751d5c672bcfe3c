"""Read plan: the Modbus requests that fetch a map's blocks, one function per request."""

from __future__ import annotations

from dataclasses import dataclass

from .regmap import RegisterMap
from .regmap.model import FUNCTIONS

# Modbus limits per request: read holding/input registers (FC 3, 4) at most 125 registers,
# read coils/discrete inputs (FC 1, 2) at most 2000 bits.
MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000


@dataclass(frozen=True)
class ReadRequest:
    """One read of `count` registers (or bits) starting at `address`, belonging to `block`."""

    block: str
    address: int
    count: int
    function: str = "input"

    @property
    def code(self) -> int:
        """The Modbus function code (4 input, 3 holding, 1 coil, 2 discrete)."""
        return FUNCTIONS[self.function]


def _needed_ranges(block, extra: frozenset[int] = frozenset()) -> list[tuple[int, int]]:
    """Half-open address ranges holding used registers (and `extra` addresses, e.g. scale
    factors), contiguous ones merged."""
    spans = [(r.address, r.address + r.width) for r in block.registers if not r.unused]
    spans += [(a, a + 1) for a in extra]
    ranges: list[list[int]] = []
    for start, end in sorted(spans):
        if ranges and ranges[-1][1] >= start:
            ranges[-1][1] = max(ranges[-1][1], end)
        else:
            ranges.append([start, end])
    return [tuple(r) for r in ranges]


def _chunk(ranges, limit: int, bridge_gaps: bool) -> list[tuple[int, int]]:
    """Cover the ranges with windows of at most `limit` registers (greedy, left to right)."""
    out: list[list[int]] = []
    for start, end in ranges:
        while start < end:
            if bridge_gaps and out and out[-1][0] + limit > start:
                out[-1][1] = min(end, out[-1][0] + limit)
            else:
                out.append([start, min(end, start + limit)])
            start = out[-1][1]
    return [tuple(w) for w in out]


def plan_block(block, limit: int | None = None,
               extra: frozenset[int] = frozenset()) -> list[ReadRequest]:
    """Requests for one block; unused gaps are read only when that saves a request.

    `limit` defaults to the function's Modbus maximum (registers or bits).
    """
    if limit is None:
        limit = MAX_BITS_PER_READ if block.is_bits else MAX_REGISTERS_PER_READ
    ranges = _needed_ranges(block, extra)
    tight = _chunk(ranges, limit, bridge_gaps=False)
    bridged = _chunk(ranges, limit, bridge_gaps=True)
    windows = bridged if len(bridged) < len(tight) else tight
    return [ReadRequest(block.name, s, e - s, block.function) for s, e in windows]


def _scale_factor_addresses(regmap: RegisterMap) -> dict[str, frozenset[int]]:
    """Per block, the scale-factor registers other registers name (read even when unused)."""
    out: dict[str, set[int]] = {}
    for f in regmap.fields():
        if f.scale_factor is not None:
            b = regmap.locate(regmap.block(f.block).function, f.scale_factor)
            out.setdefault(b.name, set()).add(f.scale_factor)
    return {k: frozenset(v) for k, v in out.items()}


def read_plan(regmap: RegisterMap, limit: int = MAX_REGISTERS_PER_READ) -> list[ReadRequest]:
    """All requests for a map, in block order. Requests never cross a block boundary.

    `limit` caps register reads; bit reads use MAX_BITS_PER_READ.
    """
    if not 1 <= limit <= MAX_REGISTERS_PER_READ:
        raise ValueError(f"limit must be 1..{MAX_REGISTERS_PER_READ}, got {limit}")
    extra = _scale_factor_addresses(regmap)
    return [req for block in regmap.blocks
            for req in plan_block(block, MAX_BITS_PER_READ if block.is_bits else limit,
                                  extra.get(block.name, frozenset()))]
