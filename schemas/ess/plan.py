"""Read plan: the Modbus requests that fetch a map's blocks."""

from __future__ import annotations

from dataclasses import dataclass

from .regmap import RegisterMap

# Modbus allows at most 125 registers in one read-input-registers request (FC 4).
MAX_REGISTERS_PER_READ = 125


@dataclass(frozen=True)
class ReadRequest:
    """One read of `count` input registers starting at `address`, belonging to `block`."""

    block: str
    address: int
    count: int


def _needed_ranges(block) -> list[tuple[int, int]]:
    """Half-open address ranges holding used registers, contiguous ones merged."""
    ranges: list[list[int]] = []
    for reg in block.registers:
        if reg.unused:
            continue
        start, end = reg.address, reg.address + reg.width
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


def plan_block(block, limit: int = MAX_REGISTERS_PER_READ) -> list[ReadRequest]:
    """Requests for one block; unused gaps are read only when that saves a request."""
    ranges = _needed_ranges(block)
    tight = _chunk(ranges, limit, bridge_gaps=False)
    bridged = _chunk(ranges, limit, bridge_gaps=True)
    windows = bridged if len(bridged) < len(tight) else tight
    return [ReadRequest(block.name, s, e - s) for s, e in windows]


def read_plan(regmap: RegisterMap, limit: int = MAX_REGISTERS_PER_READ) -> list[ReadRequest]:
    """All requests for a map, in block order. Requests never cross a block boundary."""
    if not 1 <= limit <= MAX_REGISTERS_PER_READ:
        raise ValueError(f"limit must be 1..{MAX_REGISTERS_PER_READ}, got {limit}")
    return [req for block in regmap.blocks for req in plan_block(block, limit)]
