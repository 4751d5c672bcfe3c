"""Typed, immutable view of a validated register map."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from ..wire.bits import word_count

# Register width in 16-bit words for each data type (`bit`: one bit of a register or one coil).
TYPE_WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4,
              "float32": 2, "float64": 4, "bits": 1, "bit": 1}
INTEGER_TYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64"})
ROW_TABLES = ("bank", "rack", "pcs", "etc")
# Byte orders as Telegraf names them (for 64-bit types ABCD = ABCDEFGH, CDAB = GHEFCDAB, ...):
# (words least significant first, bytes of each word swapped). `word_order` big/little = ABCD/CDAB.
BYTE_ORDERS = {"ABCD": (False, False), "CDAB": (True, False), "BADC": (False, True),
               "DCBA": (True, True)}
WORD_ORDER_ALIAS = {"big": "ABCD", "little": "CDAB"}
# Modbus functions a block reads, with their function codes; coil and discrete blocks hold bits.
FUNCTIONS = {"input": 4, "holding": 3, "coil": 1, "discrete": 2}
BIT_FUNCTIONS = frozenset({"coil", "discrete"})
# SunSpec "not implemented" values, the `sentinels: sunspec` preset (raw bit patterns).
SUNSPEC_SENTINELS = {"int16": 0x8000, "uint16": 0xFFFF, "int32": 0x80000000,
                     "uint32": 0xFFFFFFFF, "int64": 0x8000000000000000,
                     "uint64": 0xFFFFFFFFFFFFFFFF, "float32": 0x7FC00000}


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
    byte_order: str = "ABCD"
    seed_name: str = ""
    scale_factor: int | None = None     # address of the int16 power-of-ten register (SunSpec)
    sentinel: int | None = None         # raw pattern meaning "not implemented" (stored as NULL)

    @property
    def is_integer(self) -> bool:
        """True when the stored value is an integer (no scaling, integer or bit type)."""
        return self.type in ("bits", "bit") or (self.type in INTEGER_TYPES and self.scale == 1
                                         and self.scale_factor is None)

    @property
    def width(self) -> int:
        """Number of 16-bit words the value spans."""
        return TYPE_WIDTH[self.type]

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
    """A contiguous range of registers (or coils, discrete inputs) read with one function.

    A frame carries a block as 16-bit words: registers as read; bits packed `words` to a
    block, address start + k in word k // 16 at bit k % 16 (least significant first).
    """

    name: str
    start: int
    count: int
    scaled: bool
    registers: tuple[Register, ...]
    function: str = "input"

    @property
    def end(self) -> int:
        """One past the last address."""
        return self.start + self.count

    @property
    def is_bits(self) -> bool:
        """True for coil and discrete-input blocks (addresses are bits)."""
        return self.function in BIT_FUNCTIONS

    @property
    def words(self) -> int:
        """Number of 16-bit words the block takes in a frame."""
        return word_count(self.count) if self.is_bits else self.count

    @property
    def size_text(self) -> str:
        """Its size in a frame as `ess map check` and the decoder say it: `64 registers`, or
        for bits `2 words (20 coils)`."""
        if not self.is_bits:
            return f"{self.count} registers"
        bits = "coils" if self.function == "coil" else "discrete inputs"
        return f"{self.words} word{'s' * (self.words > 1)} ({self.count} {bits})"


SEVERITIES = ("fault", "warning")


@dataclass(frozen=True)
class Alarm:
    """An alarm declared on a column (docs/events.md): a bit (active while the stored value is
    not 0, or while bit `bit` of it is set), or a threshold (`above` / `below`, with
    `hysteresis`); raised once its condition has held for `for_s` seconds."""

    name: str
    severity: str
    table: str
    column: str
    bit: int | None = None
    above: float | None = None
    below: float | None = None
    hysteresis: float = 0.0
    for_s: float = 0.0
    note: str = ""

    @property
    def is_threshold(self) -> bool:
        return self.above is not None or self.below is not None

    def condition(self) -> str:
        """The raise and clear rule in words, e.g. `> 45 (clears at <= 42) for 10 s`."""
        if self.above is not None:
            text, clear = f"> {_num(self.above)}", f"<= {_num(self.above - self.hysteresis)}"
        elif self.below is not None:
            text, clear = f"< {_num(self.below)}", f">= {_num(self.below + self.hysteresis)}"
        else:
            text, clear = (f"bit {self.bit} set" if self.bit is not None else "not 0"), ""
        if self.hysteresis:
            text += f" (clears at {clear})"
        return text + (f" for {_num(self.for_s)} s" if self.for_s else "")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


@dataclass(frozen=True)
class RegisterMap:
    """A whole device map: blocks in read order, with derived per-table column layouts."""

    map_id: str
    version: int
    blocks: tuple[Block, ...] = field(repr=False)
    source: str = "<memory>"
    racks: int = 0
    description: str = ""
    sentinels: tuple[tuple[str, int], ...] = ()
    alarms: tuple[Alarm, ...] = ()

    @property
    def key(self) -> tuple[str, int]:
        return (self.map_id, self.version)

    def locate(self, function: str, address: int) -> Block | None:
        """The block of `function` that holds `address` (None when none does)."""
        return next((b for b in self.blocks if b.function == function
                     and b.start <= address < b.end), None)

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

    def table_alarms(self, table: str) -> tuple[Alarm, ...]:
        """The alarms declared on a table's columns, in declaration order."""
        return _table_alarms(self, table)


@lru_cache(maxsize=256)
def _table_alarms(regmap: RegisterMap, table: str) -> tuple[Alarm, ...]:
    return tuple(a for a in regmap.alarms if a.table == table)


@lru_cache(maxsize=256)
def _columns(regmap: RegisterMap, table: str) -> tuple[str, ...]:
    """Column names of a table, computed once per (map, table): rows are built by the thousand."""
    return tuple(f.column for f in regmap.table_fields(table))
