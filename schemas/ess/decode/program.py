"""A map's compiled decoding program: index vectors into a frame's raw registers, one frozen
object built once per map (`decoder_for` caches it) and shared by every thread that decodes.

The raw vector of a frame is its blocks' registers end to end (`block_offset`). Each output
cell (every table's columns, racks repeated) has a source word, a type, a scale and a range;
cells of one kind are gathered with one numpy index vector (`g16`, `gbits`, `wide` groups...).
Every array is read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from types import MappingProxyType

import numpy as np

from ..regmap import Field, RegisterMap
from ..wire.bits import bit_position
from .rounding import big_cells
from .words import WideGroup, compile_group


@dataclass(frozen=True)
class Program:
    """Everything `Decoder` needs, per cell and per block, as frozen numpy vectors."""

    block_names: tuple[str, ...]
    block_sizes: tuple[int, ...]
    block_offset: MappingProxyType    # block -> index of its first word in the raw vector
    width: int                        # words in a frame's raw vector
    layout: tuple[Field, ...]         # every output cell, in table then row then column order
    tables: tuple[tuple, ...]         # (table, cells, rows/frame, cols, rows x blocks feeding)
    cell_block: np.ndarray            # per cell: index of its block
    is_int: np.ndarray                # per cell: store and print as an integer
    g16: np.ndarray                   # 16-bit cells, their raw words, sign and sentinel
    src16: np.ndarray
    signed16: np.ndarray
    has_sent16: np.ndarray
    sent16: np.ndarray
    wide: tuple[WideGroup, ...]       # 32- and 64-bit cells (words.py)
    gbits: np.ndarray                 # bit cells, their word and bit index
    srcbits: np.ndarray
    bitpos: np.ndarray
    gsf: np.ndarray                   # cells scaled by a register (SunSpec), its word and block
    srcsf: np.ndarray
    sf_block: np.ndarray
    scale: np.ndarray                 # per cell: fixed scale, and the cells it is not 1 for
    scaled: np.ndarray
    scaled_big: np.ndarray            # positions in `scaled` that can reach 2^52 (rounding.py)
    lo: np.ndarray                    # per cell: valid range (-inf/inf when none)
    hi: np.ndarray
    ranged: bool                      # any cell has a range
    inverted: np.ndarray              # cells stored as 1 - value (0/1)

    def __post_init__(self) -> None:
        _freeze([getattr(self, f.name) for f in fields(self)])


def _freeze(value) -> None:
    """Make every numpy array in `value` (and in its tuples, lists and dataclasses) read-only."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, tuple | list):
        for item in value:
            _freeze(item)
    elif hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
        _freeze([getattr(value, f.name) for f in fields(value)])


def _tables(regmap: RegisterMap, block_names: tuple[str, ...]) -> tuple[list[Field], list]:
    """The cells of every table in order, and per table its slice of cells, rows per frame,
    columns and which blocks feed each row."""
    layout: list[Field] = []
    tables = []
    block_index = {name: i for i, name in enumerate(block_names)}
    for table in regmap.tables():
        start = len(layout)
        if table == "rack":
            per_rack = [regmap.table_fields("rack", r) for r in range(1, regmap.racks + 1)]
            for cells in per_rack:
                layout.extend(cells)
            nrows, ncols = regmap.racks, len(per_rack[0])
        else:
            layout.extend(regmap.table_fields(table))
            nrows, ncols = 1, len(layout) - start
        cb = np.array([block_index[f.block] for f in layout[start:]]).reshape(nrows, ncols)
        feeds = (cb[:, :, None] == np.arange(len(block_names))).any(axis=1)
        tables.append((table, slice(start, len(layout)), nrows, ncols, feeds))
    return layout, tables


def _sources(regmap: RegisterMap, layout: list[Field],
             block_offset: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: index of its (first) word in the raw vector, and its bit index."""
    src, bit = [], []
    for f in layout:
        b = regmap.block(f.block)
        k = f.address - b.start
        word, pos = bit_position(k) if b.is_bits else (k, f.bit or 0)   # bits: 16 a word
        src.append(block_offset[b.name] + word)
        bit.append(pos)
    return np.array(src, dtype=np.intp), np.array(bit, dtype=np.int64)


def _scale_factors(regmap: RegisterMap, layout: list[Field], block_offset: dict[str, int],
                   block_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Cells scaled by another register (SunSpec): that register's raw index and block."""
    cells, src, blocks = [], [], []
    for i, f in enumerate(layout):
        if f.scale_factor is None:
            continue
        b = regmap.locate(regmap.block(f.block).function, f.scale_factor)
        cells.append(i)
        src.append(block_offset[b.name] + f.scale_factor - b.start)
        blocks.append(block_names.index(b.name))
    return {"gsf": np.array(cells, dtype=np.intp), "srcsf": np.array(src, dtype=np.intp),
            "sf_block": np.array(blocks, dtype=np.intp)}


def compile_program(regmap: RegisterMap) -> Program:
    """The map's decoding program (compiling costs milliseconds: cache it, see decoder_for)."""
    names = tuple(b.name for b in regmap.blocks)
    sizes = tuple(b.words for b in regmap.blocks)
    offsets = np.cumsum((0,) + sizes)
    offset = dict(zip(names, offsets[:-1].tolist()))
    layout, tables = _tables(regmap, names)
    src, bitpos = _sources(regmap, layout, offset)
    kinds = np.array([f.type for f in layout])
    is_int = np.array([f.is_integer for f in layout], dtype=bool)
    g16 = np.flatnonzero((kinds == "int16") | (kinds == "uint16"))
    sent16 = [layout[i].sentinel for i in g16]
    gbits = np.flatnonzero((kinds == "bits") | (kinds == "bit"))
    scale = np.array([f.scale for f in layout], dtype=np.float64)
    lo = np.array([f.min if f.has_range else -np.inf for f in layout], dtype=np.float64)
    hi = np.array([f.max if f.has_range else np.inf for f in layout], dtype=np.float64)
    return Program(
        block_names=names, block_sizes=sizes, block_offset=MappingProxyType(offset),
        width=int(offsets[-1]), layout=tuple(layout), tables=tuple(tables),
        cell_block=np.array([names.index(f.block) for f in layout], dtype=np.intp),
        is_int=is_int, g16=g16, src16=src[g16], signed16=kinds[g16] == "int16",
        has_sent16=np.array([s is not None for s in sent16], dtype=bool),
        sent16=np.array([s or 0 for s in sent16], dtype=np.uint16),
        wide=tuple(g for g in (compile_group(w, layout, src, is_int) for w in (2, 4))
                   if g is not None),
        gbits=gbits, srcbits=src[gbits], bitpos=bitpos[gbits],
        **_scale_factors(regmap, layout, offset, names),
        scale=scale, scaled=np.flatnonzero(scale != 1.0),
        scaled_big=big_cells(layout, np.flatnonzero(scale != 1.0), scale), lo=lo, hi=hi,
        ranged=bool(np.isfinite(lo).any() or np.isfinite(hi).any()),
        inverted=np.array([i for i, f in enumerate(layout) if f.invert], dtype=np.intp))
