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


def _spans(block, extra: frozenset[int] = frozenset()) -> list[tuple[int, int]]:
    """Half-open address spans of the used values (a 32-bit value spans two registers) and of
    `extra` addresses (e.g. scale factors), sorted."""
    spans = [(r.address, r.address + r.width) for r in block.registers if not r.unused]
    return sorted(spans + [(a, a + 1) for a in extra])


def _needed_ranges(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans with contiguous or overlapping ones merged."""
    ranges: list[list[int]] = []
    for start, end in spans:
        if ranges and ranges[-1][1] >= start:
            ranges[-1][1] = max(ranges[-1][1], end)
        else:
            ranges.append([start, end])
    return [tuple(r) for r in ranges]


def _cut(stop: int, inside: dict[int, int]) -> int:
    """`stop`, or the start of the value `stop` would split (a read never tears a value)."""
    return inside.get(stop, stop)


def _chunk(ranges, limit: int, bridge_gaps: bool,
           inside: dict[int, int]) -> list[tuple[int, int]]:
    """Cover the ranges with windows of at most `limit` registers (greedy, left to right),
    ending only between values (`inside`: address strictly within a value -> its start)."""
    out: list[list[int]] = []
    for start, end in ranges:
        while start < end:
            if bridge_gaps and out and out[-1][0] + limit > start:
                cut = _cut(min(end, out[-1][0] + limit), inside)
                if cut > start:
                    out[-1][1] = start = cut
                    continue
            cut = _cut(min(end, start + limit), inside)
            if cut <= start:
                raise ValueError(f"the value at address {start} is wider than {limit} registers "
                                 "(the read limit)")
            out.append([start, cut])
            start = cut
    return [tuple(w) for w in out]


def plan_block(block, limit: int | None = None,
               extra: frozenset[int] = frozenset()) -> list[ReadRequest]:
    """Requests for one block; unused gaps are read only when that saves a request, and no
    request ends inside a multi-register value (its words would come from two moments).

    `limit` defaults to the function's Modbus maximum (registers or bits); a value wider than
    `limit` raises ValueError.
    """
    if limit is None:
        limit = MAX_BITS_PER_READ if block.is_bits else MAX_REGISTERS_PER_READ
    spans = _spans(block, extra)
    inside = {a: s for s, e in spans for a in range(s + 1, e)}
    ranges = _needed_ranges(spans)
    tight = _chunk(ranges, limit, False, inside)
    bridged = _chunk(ranges, limit, True, inside)
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

    `limit` caps register reads (a device's `max_registers_per_read`); bit reads use
    MAX_BITS_PER_READ. ValueError when `limit` is outside 1..125 or below the map's widest value.
    """
    if not 1 <= limit <= MAX_REGISTERS_PER_READ:
        raise ValueError(f"limit must be 1..{MAX_REGISTERS_PER_READ}, got {limit}")
    extra = _scale_factor_addresses(regmap)
    return [req for block in regmap.blocks
            for req in plan_block(block, MAX_BITS_PER_READ if block.is_bits else limit,
                                  extra.get(block.name, frozenset()))]
