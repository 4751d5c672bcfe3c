"""Decoder: raw block registers to table rows (sign, scale, range flag, invert, split).

Compiled once per map into index vectors, then applied to whole batches of frames with numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import PermanentError
from .regmap import Field, RegisterMap
from .regmap.checks import SCALE_FACTOR_RANGE
from .rounding import big_cells, round3
from .wire.bits import bit_position
from .words import assemble, compile_group


class DecodeError(PermanentError):
    """Raw registers do not fit the map (missing block, wrong length, value out of 0..65535)."""

    reason = "registers_do_not_fit_map"


def _is_register(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535


@dataclass
class TableBatch:
    """Decoded rows of one table for a batch of frames."""

    table: str
    columns: tuple[str, ...]
    is_int: np.ndarray          # per column: store and print as an integer
    frame: np.ndarray           # per row: index of its frame in the batch
    rack: np.ndarray | None     # per row: rack id (rack table only)
    values: np.ndarray          # rows x columns, float64, NaN where the block was not read
    out_of_range: np.ndarray    # rows x columns, bool
    exact: dict[int, np.ndarray] | None = None   # 64-bit integer columns: per row int or None

    def __len__(self) -> int:
        return len(self.frame)

    def column_lists(self) -> list[list]:
        """Values column by column as Python lists: ints for integer columns, None for missing."""
        ints = np.flatnonzero(self._plain_ints())
        floats = np.flatnonzero(~self.is_int)
        missing = np.isnan(self.values)
        if missing.any():
            # Integer columns cannot hold NaN: convert those with a placeholder, then patch.
            int_part = np.where(missing[:, ints], 0, self.values[:, ints]).astype(np.int64)
        else:
            int_part = self.values[:, ints].astype(np.int64)
        cols: list[list] = [None] * len(self.columns)  # type: ignore[list-item]
        for j, col in zip(ints.tolist(), int_part.T.tolist()):
            cols[j] = col
        for j, col in zip(floats.tolist(), self.values[:, floats].T.tolist()):
            cols[j] = col
        if missing.any():
            for j in np.flatnonzero(missing.any(axis=0)).tolist():
                col = cols[j]
                for i in np.flatnonzero(missing[:, j]).tolist() if col is not None else ():
                    col[i] = None
        for j, col in (self.exact or {}).items():
            cols[j] = col.tolist()
        return cols

    def _plain_ints(self) -> np.ndarray:
        """Integer columns other than the exact (64-bit) ones."""
        if not self.exact:
            return self.is_int
        plain = self.is_int.copy()
        plain[list(self.exact)] = False
        return plain

    def row_lists(self) -> list[list]:
        """Values row by row as Python lists: ints for integer columns, None for missing."""
        out = self.values.astype(object)
        missing = np.isnan(self.values)
        ints = np.flatnonzero(self._plain_ints())
        if ints.size:
            part = self.values[:, ints]
            out[:, ints] = np.where(missing[:, ints], 0, part).astype(np.int64)
        if missing.any():
            out[missing] = None
        for j, col in (self.exact or {}).items():
            out[:, j] = col
        return out.tolist()

    def out_of_range_lists(self) -> list[list[str] | None]:
        """Per row, the sorted names of out-of-range columns, or None when there are none."""
        out: list[list[str] | None] = [None] * len(self.frame)
        if not self.out_of_range.any():
            return out
        order = sorted(range(len(self.columns)), key=self.columns.__getitem__)
        names = [self.columns[j] for j in order]
        rows, cols = np.nonzero(self.out_of_range[:, order])
        for i, j in zip(rows.tolist(), cols.tolist()):
            if out[i] is None:
                out[i] = []
            out[i].append(names[j])  # type: ignore[union-attr]
        return out

    def rows(self) -> list[dict]:
        """Rows as dicts in the `ess decode` layout (without bank_id)."""
        cols = self.column_lists()
        oor = self.out_of_range_lists()
        rows = []
        for i in range(len(self.frame)):
            row: dict = {"table": self.table}
            if self.rack is not None:
                row["rack_id"] = int(self.rack[i])
            row.update(zip(self.columns, (c[i] for c in cols)))
            row["out_of_range"] = oor[i] or []
            rows.append(row)
        return rows


class Decoder:
    """Decodes frames of one register map."""

    def __init__(self, regmap: RegisterMap):
        self.map = regmap
        self.block_names = tuple(b.name for b in regmap.blocks)
        self.block_sizes = tuple(b.words for b in regmap.blocks)
        offsets = np.cumsum((0,) + self.block_sizes)
        self.block_offset = dict(zip(self.block_names, offsets[:-1].tolist()))
        self.width = int(offsets[-1])
        self._compile()

    def _compile(self) -> None:
        layout: list[Field] = []          # every output cell, in table then row then column order
        self.tables: list[tuple] = []   # (table, cells, rows/frame, cols, rows x blocks feeding)
        block_index = {name: i for i, name in enumerate(self.block_names)}
        for table in self.map.tables():
            start = len(layout)
            if table == "rack":
                per_rack = [self.map.table_fields("rack", r) for r in range(1, self.map.racks + 1)]
                for fields in per_rack:
                    layout.extend(fields)
                nrows, ncols = self.map.racks, len(per_rack[0])
            else:
                layout.extend(self.map.table_fields(table))
                nrows, ncols = 1, len(layout) - start
            cb = np.array([block_index[f.block] for f in layout[start:]]).reshape(nrows, ncols)
            feeds = (cb[:, :, None] == np.arange(len(self.block_names))).any(axis=1)
            self.tables.append((table, slice(start, len(layout)), nrows, ncols, feeds))
        self.layout = layout
        n = len(layout)
        self.cell_block = np.array([block_index[f.block] for f in layout], dtype=np.intp)
        src, bitpos = self._sources(layout)
        kinds = np.array([f.type for f in layout])
        self.is_int = np.array([f.is_integer for f in layout], dtype=bool)
        self.g16 = np.flatnonzero((kinds == "int16") | (kinds == "uint16"))
        self.src16 = src[self.g16]
        self.signed16 = (kinds[self.g16] == "int16")
        sent16 = [layout[i].sentinel for i in self.g16]
        self.has_sent16 = np.array([s is not None for s in sent16], dtype=bool)
        self.sent16 = np.array([s or 0 for s in sent16], dtype=np.uint16)
        self.wide = [g for g in (compile_group(w, layout, src, self.is_int) for w in (2, 4))
                     if g is not None]
        self.gbits = np.flatnonzero((kinds == "bits") | (kinds == "bit"))
        self.srcbits = src[self.gbits]
        self.bitpos = bitpos[self.gbits]
        self._compile_scale_factors(layout)
        self.scale = np.array([f.scale for f in layout], dtype=np.float64)
        self.scaled = np.flatnonzero(self.scale != 1.0)
        self.scaled_big = big_cells(layout, self.scaled, self.scale)
        self.lo = np.array([f.min if f.has_range else -np.inf for f in layout], dtype=np.float64)
        self.hi = np.array([f.max if f.has_range else np.inf for f in layout], dtype=np.float64)
        self.ranged = bool(np.isfinite(self.lo).any() or np.isfinite(self.hi).any())
        self.inverted = np.array([i for i in range(n) if layout[i].invert], dtype=np.intp)

    def _sources(self, layout: list[Field]) -> tuple[np.ndarray, np.ndarray]:
        """Per cell: index of its (first) word in the raw vector, and its bit index."""
        src, bit = [], []
        for f in layout:
            b = self.map.block(f.block)
            k = f.address - b.start
            word, pos = bit_position(k) if b.is_bits else (k, f.bit or 0)   # bits: 16 a word
            src.append(self.block_offset[b.name] + word)
            bit.append(pos)
        return np.array(src, dtype=np.intp), np.array(bit, dtype=np.int64)

    def _compile_scale_factors(self, layout: list[Field]) -> None:
        """Cells scaled by another register (SunSpec): that register's raw index and block."""
        cells, src, blocks = [], [], []
        names = list(self.block_names)
        for i, f in enumerate(layout):
            if f.scale_factor is None:
                continue
            b = self.map.locate(self.map.block(f.block).function, f.scale_factor)
            cells.append(i)
            src.append(self.block_offset[b.name] + f.scale_factor - b.start)
            blocks.append(names.index(b.name))
        self.gsf = np.array(cells, dtype=np.intp)
        self.srcsf = np.array(src, dtype=np.intp)
        self.sf_block = np.array(blocks, dtype=np.intp)

    # ---- input ---------------------------------------------------------------------------
    def raw_from_blocks(self, blocks: Mapping[str, Sequence[int] | None]) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
        """One frame's raw vector and block-ok flags from `{block: registers or None}`."""
        raw = np.zeros(self.width, dtype=np.uint16)
        ok = np.ones(len(self.block_names), dtype=bool)
        for i, (name, size) in enumerate(zip(self.block_names, self.block_sizes)):
            if name not in blocks:
                raise DecodeError(f"missing block {name}")
            regs = blocks[name]
            if regs is None:
                ok[i] = False
                continue
            if len(regs) != size:
                raise DecodeError(f"block {name}: expected {size} registers, got {len(regs)}")
            arr = np.asarray(regs)
            if arr.dtype.kind not in "iu" or (arr.size and (arr.min() < 0 or arr.max() > 65535)):
                bad = next((j for j, v in enumerate(regs) if not _is_register(v)), 0)
                raise DecodeError(f"block {name}: register {bad} (address "
                                  f"{self.map.block(name).start + bad}) is {regs[bad]!r}, "
                                  "not an integer in 0..65535")
            off = self.block_offset[name]
            raw[off:off + size] = arr
        extra = sorted(set(blocks) - set(self.block_names))
        if extra:
            raise DecodeError(f"unknown block(s) {', '.join(map(str, extra))}")
        return raw, ok

    # ---- decoding ------------------------------------------------------------------------
    def cells(self, raw: np.ndarray, ok: np.ndarray | None = None) -> tuple[np.ndarray,
                                                                            np.ndarray]:
        """Values (N x cells, NaN where missing) and out-of-range flags for a raw batch."""
        values, oor, _exact = self._cells(raw, ok)
        return values, oor

    def _cells(self, raw: np.ndarray, ok: np.ndarray | None) -> tuple[np.ndarray, np.ndarray,
                                                                      dict]:
        """`cells`, plus the exact 64-bit integers {cell: per-frame ints or None}."""
        raw = np.ascontiguousarray(raw, dtype=np.uint16).reshape(-1, self.width)
        values = np.empty((raw.shape[0], len(self.layout)), dtype=np.float64)
        exact: dict[int, np.ndarray] = {}
        if len(self.g16):
            u = raw[:, self.src16]
            s = u.view(np.int16)
            values[:, self.g16] = np.where(self.signed16, s, u)
            if self.has_sent16.any():
                hit = self.has_sent16 & (u == self.sent16)
                values[:, self.g16] = np.where(hit, np.nan, values[:, self.g16])
        for g in self.wide:
            values[:, g.cells], more = assemble(g, raw)
            exact.update(more)
        if len(self.gbits):
            values[:, self.gbits] = (raw[:, self.srcbits] >> self.bitpos) & 1
        if len(self.scaled):
            values[:, self.scaled] = round3(values[:, self.scaled] * self.scale[self.scaled],
                                            self.scaled_big)
        if len(self.gsf):
            self._apply_scale_factors(raw, values, ok)
        if self.ranged:
            oor = (values < self.lo) | (values > self.hi)
        else:
            oor = np.zeros(values.shape, dtype=bool)
        if len(self.inverted):
            v = values[:, self.inverted]
            values[:, self.inverted] = np.where(v == 0, 1.0, np.where(v == 1, 0.0, v))
        if ok is not None and not ok.all():
            missing = ~np.asarray(ok, dtype=bool).reshape(-1, len(self.block_names))[
                :, self.cell_block]
            values[missing] = np.nan
            oor[missing] = False
            for cell, col in exact.items():
                col[missing[:, cell]] = None
        return values, oor, exact

    def _apply_scale_factors(self, raw: np.ndarray, values: np.ndarray,
                             ok: np.ndarray | None) -> None:
        """value = raw x 10^sf; NULL when sf is outside -10..10 (SunSpec's 0x8000) or unread."""
        e = raw[:, self.srcsf].view(np.int16).astype(np.float64)
        e[np.abs(e) > SCALE_FACTOR_RANGE] = np.nan
        if ok is not None:
            e[~np.asarray(ok, dtype=bool).reshape(-1, len(self.block_names))[
                :, self.sf_block]] = np.nan
        v = values[:, self.gsf]
        with np.errstate(invalid="ignore"):   # dividing by an exact power of ten rounds once
            values[:, self.gsf] = np.where(e < 0, v / 10.0 ** -e, v * 10.0 ** e)

    def decode_batch(self, raw: np.ndarray, ok: np.ndarray | None = None) -> list[TableBatch]:
        """Decode N frames (N x width raw registers) into one TableBatch per table.

        Rows whose every source block failed are dropped, frame by frame (all sentinels: kept).
        """
        return self._tables(*self._cells(raw, ok), ok)

    def raw_from_frames(self, frames) -> tuple[np.ndarray, np.ndarray]:
        """Raw matrix (N x width) and block-ok flags (N x blocks) from codec frames."""
        raw = np.zeros((len(frames), self.width), dtype=np.uint16)
        ok = np.zeros((len(frames), len(self.block_names)), dtype=bool)
        for b, (name, size) in enumerate(zip(self.block_names, self.block_sizes)):
            rows, chunks = [], []
            for i, frame in enumerate(frames):
                block = frame.blocks.get(name)
                if block is None or not block.ok:
                    continue
                if len(block.registers) != 2 * size:
                    raise DecodeError(f"frame {i} (seq {frame.seq}): block {name} has "
                                      f"{len(block.registers) // 2} registers, map "
                                      f"{self.map.map_id} v{self.map.version} expects {size}")
                rows.append(i)
                chunks.append(block.registers)
            if rows:   # one conversion per block for the whole batch
                off = self.block_offset[name]
                values = np.frombuffer(b"".join(chunks), dtype=">u2").reshape(len(rows), size)
                where = slice(None) if len(rows) == len(frames) else rows
                raw[where, off:off + size] = values
                ok[where, b] = True
        return raw, ok

    def decode_frames(self, frames, parts: list[list[int]] | None = None
                      ) -> tuple[list[TableBatch], list]:
        """Decode codec frames; also return out-of-range cells aggregated by register:
        `{block, address, column, count, min, max}` (the original 2021 design logged each one;
        we count them).

        With `parts` (lists of frame indices, e.g. one per message), the summary is a list:
        one summary per part.
        """
        raw, ok = self.raw_from_frames(frames)
        values, oor, exact = self._cells(raw, ok)
        if parts is None:
            summary: list = self._summary(values, oor)
        else:
            flagged = oor.any(axis=1)
            summary = [self._summary(values[p], oor[p]) if p and flagged[p].any() else []
                       for p in parts]
        return self._tables(values, oor, exact, ok), summary

    def _summary(self, values: np.ndarray, oor: np.ndarray) -> list[dict]:
        summary = []
        counts = oor.sum(axis=0)
        cols = np.flatnonzero(counts)
        if len(cols):  # min/max of the flagged values, all columns at once
            v, o = values[:, cols], oor[:, cols]
            lows = np.where(o, v, np.inf).min(axis=0).tolist()
            highs = np.where(o, v, -np.inf).max(axis=0).tolist()
            for c, lo, hi in zip(cols.tolist(), lows, highs, strict=True):
                f = self.layout[c]
                summary.append({"block": f.block, "address": f.address, "column": f.column,
                                "count": int(counts[c]), "min": lo, "max": hi})
        return summary

    def _tables(self, values: np.ndarray, oor: np.ndarray, exact: dict,
                ok: np.ndarray | None) -> list[TableBatch]:
        n = values.shape[0]
        out = []
        ok = None if ok is None or np.all(ok) else np.asarray(ok, dtype=bool).reshape(n, -1)
        for table, cells, nrows, ncols, feeds in self.tables:
            v = values[:, cells].reshape(n * nrows, ncols)
            f = oor[:, cells].reshape(n * nrows, ncols)
            frame = np.repeat(np.arange(n), nrows)
            rack = np.tile(np.arange(1, nrows + 1), n) if table == "rack" else None
            ex = _table_exact(exact, cells, n, nrows, ncols) if exact else None
            if ok is not None:   # a row stays if any block feeding it (in its frame) was read
                keep = (ok[:, None, :] & feeds[None, :, :]).any(axis=2).reshape(n * nrows)
                if not keep.all():
                    v, f, frame = v[keep], f[keep], frame[keep]
                    rack = rack[keep] if rack is not None else None
                    ex = {j: c[keep] for j, c in ex.items()} if ex else None
            out.append(TableBatch(table, self.map.columns(table), self.is_int[cells][:ncols],
                                  frame, rack, v, f, ex))
        return out

    def decode(self, blocks: Mapping[str, Sequence[int] | None], bank_id: int = 1) -> list[dict]:
        """Decode one frame given as `{block: registers}` into rows (bank, racks, pcs, etc)."""
        raw, ok = self.raw_from_blocks(blocks)
        rows = []
        for tb in self.decode_batch(raw[None, :], ok[None, :]):
            for row in tb.rows():
                rows.append({"table": row.pop("table"), "bank_id": bank_id, **row})
        return rows


def _table_exact(exact: dict, cells: slice, n: int, nrows: int,
                 ncols: int) -> dict[int, np.ndarray] | None:
    """A table's exact columns {column: per-row objects}, rows as `_tables` lays them out."""
    out = {}
    for j in range(ncols):
        parts = [exact.get(cells.start + r * ncols + j) for r in range(nrows)]
        if parts[0] is not None:
            out[j] = np.stack(parts, axis=1).reshape(n * nrows)
    return out or None


@lru_cache(maxsize=64)
def decoder_for(regmap: RegisterMap) -> Decoder:
    """The map's compiled decoder, built once (compiling costs ms; frames come by the thousand)."""
    return Decoder(regmap)
