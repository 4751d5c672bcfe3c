"""Typed, immutable view of a validated register map."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

# Register width in 16-bit words for each data type.
TYPE_WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "bits": 1}
INTEGER_TYPES = frozenset({"int16", "uint16", "int32", "uint32"})
ROW_TABLES = ("bank", "rack", "pcs", "etc")


@dataclass(frozen=True)
class Field:
    """One output column produced by a register (a bit field yields several)."""

    table: str
    column: str
    rack: int | None
    block: str
    address: int
    type: str
    scale: float = 1.0
    unit: str = ""
    min: float | None = None
    max: float | None = None
    invert: bool = False
    bit: int | None = None
    word_order: str = "big"
    seed_name: str = ""

    @property
    def is_integer(self) -> bool:
        """True when the stored value is an integer (no scaling, integer or bit type)."""
        return self.bit is not None or (self.type in INTEGER_TYPES and self.scale == 1)

    @property
    def has_range(self) -> bool:
        return self.min is not None and self.max is not None


@dataclass(frozen=True)
class Register:
    """A register (or register pair) at an address; `fields` is empty when it is unused."""

    block: str
    address: int
    type: str
    fields: tuple[Field, ...]
    unused: bool = False

    @property
    def width(self) -> int:
        """Number of 16-bit words the register spans."""
        return TYPE_WIDTH[self.type]


@dataclass(frozen=True)
class Block:
    """A contiguous range of input registers read as one unit."""

    name: str
    start: int
    count: int
    scaled: bool
    registers: tuple[Register, ...]

    @property
    def end(self) -> int:
        """One past the last address."""
        return self.start + self.count


@dataclass(frozen=True)
class RegisterMap:
    """A whole device map: blocks in read order, with derived per-table column layouts."""

    map_id: str
    version: int
    blocks: tuple[Block, ...] = field(repr=False)
    source: str = "<memory>"
    racks: int = 0
    description: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.map_id, self.version)

    def block(self, name: str) -> Block:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(name)

    def __hash__(self) -> int:
        return hash((self.map_id, self.version, self.source))

    def fields(self) -> list[Field]:
        """Every output field in block order, then address, then bit."""
        return [f for b in self.blocks for r in b.registers for f in r.fields]

    def table_fields(self, table: str, rack: int | None = None) -> list[Field]:
        """Fields of one table (for `rack`, of one rack: rack 1 by default)."""
        if table == "rack" and rack is None:
            rack = 1
        return [f for f in self.fields() if f.table == table and f.rack == rack]

    def columns(self, table: str) -> tuple[str, ...]:
        """Value column names of a table, in row order."""
        return _columns(self, table)

    def tables(self) -> tuple[str, ...]:
        """Tables this map fills, in the standard order."""
        present = {f.table for f in self.fields()}
        return tuple(t for t in ROW_TABLES if t in present)


@lru_cache(maxsize=256)
def _columns(regmap: RegisterMap, table: str) -> tuple[str, ...]:
    """Column names of a table, computed once per (map, table): rows are built by the thousand."""
    return tuple(f.column for f in regmap.table_fields(table))
