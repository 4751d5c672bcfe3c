"""Decoder: raw block registers to table rows (sign, scale, range flag, invert, split).

A map's frozen Program (program.py) applied to whole batches of frames with numpy; the input
checked against the map first (a frame that does not fit raises DecodeError).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from ..errors import PermanentError
from ..regmap import RegisterMap
from ..regmap.checks import SCALE_FACTOR_RANGE
from .batch import TableBatch, table_exact
from .program import compile_program
from .rounding import round3
from .words import assemble


class DecodeError(PermanentError):
    """Raw registers do not fit the map (missing block, wrong length, value out of 0..65535)."""

    reason = "registers_do_not_fit_map"


def _is_register(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535


class Decoder:
    """Decodes frames of one register map with its compiled program."""

    def __init__(self, regmap: RegisterMap):
        self.map = regmap
        self.program = compile_program(regmap)

    # the program's shape, read by callers that build raw vectors themselves
    @property
    def width(self) -> int:
        return self.program.width

    @property
    def block_names(self) -> tuple[str, ...]:
        return self.program.block_names

    @property
    def block_sizes(self) -> tuple[int, ...]:
        return self.program.block_sizes

    @property
    def block_offset(self):
        return self.program.block_offset

    @property
    def layout(self) -> tuple:
        return self.program.layout

    @property
    def tables(self) -> tuple:
        return self.program.tables

    # ---- input ---------------------------------------------------------------------------
    def raw_from_blocks(self, blocks: Mapping[str, Sequence[int] | None]) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
        """One frame's raw vector and block-ok flags from `{block: registers or None}`."""
        p = self.program
        raw = np.zeros(p.width, dtype=np.uint16)
        ok = np.ones(len(p.block_names), dtype=bool)
        for i, (name, size) in enumerate(zip(p.block_names, p.block_sizes)):
            if name not in blocks:
                raise DecodeError(f"missing block {name}")
            regs = blocks[name]
            if regs is None:
                ok[i] = False
                continue
            if len(regs) != size:
                raise DecodeError(f"block {name}: expected {self.map.block(name).size_text}, "
                                  f"got {len(regs)}")
            arr = np.asarray(regs)
            if arr.dtype.kind not in "iu" or (arr.size and (arr.min() < 0 or arr.max() > 65535)):
                bad = next((j for j, v in enumerate(regs) if not _is_register(v)), 0)
                raise DecodeError(f"block {name}: register {bad} (address "
                                  f"{self.map.block(name).start + bad}) is {regs[bad]!r}, "
                                  "not an integer in 0..65535")
            off = p.block_offset[name]
            raw[off:off + size] = arr
        extra = sorted(set(blocks) - set(p.block_names))
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
        p = self.program
        raw = np.ascontiguousarray(raw, dtype=np.uint16).reshape(-1, p.width)
        values = np.empty((raw.shape[0], len(p.layout)), dtype=np.float64)
        exact: dict[int, np.ndarray] = {}
        if len(p.g16):
            u = raw[:, p.src16]
            s = u.view(np.int16)
            values[:, p.g16] = np.where(p.signed16, s, u)
            if p.has_sent16.any():
                hit = p.has_sent16 & (u == p.sent16)
                values[:, p.g16] = np.where(hit, np.nan, values[:, p.g16])
        for g in p.wide:
            values[:, g.cells], more = assemble(g, raw)
            exact.update(more)
        if len(p.gbits):
            values[:, p.gbits] = (raw[:, p.srcbits] >> p.bitpos) & 1
        if len(p.scaled):
            with np.errstate(over="ignore"):    # beyond the double range: an infinity
                x = values[:, p.scaled] * p.scale[p.scaled]
            values[:, p.scaled] = round3(x, p.scaled_big)
        if len(p.gsf):
            self._apply_scale_factors(raw, values, ok)
        if p.ranged:
            oor = (values < p.lo) | (values > p.hi)
        else:
            oor = np.zeros(values.shape, dtype=bool)
        if len(p.inverted):
            v = values[:, p.inverted]
            values[:, p.inverted] = np.where(v == 0, 1.0, np.where(v == 1, 0.0, v))
        if ok is not None and not ok.all():
            missing = ~np.asarray(ok, dtype=bool).reshape(-1, len(p.block_names))[
                :, p.cell_block]
            values[missing] = np.nan
            oor[missing] = False
            for cell, col in exact.items():
                col[missing[:, cell]] = None
        return values, oor, exact

    def _apply_scale_factors(self, raw: np.ndarray, values: np.ndarray,
                             ok: np.ndarray | None) -> None:
        """value = raw x 10^sf; NULL when sf is outside -10..10 (SunSpec's 0x8000) or unread."""
        p = self.program
        e = raw[:, p.srcsf].view(np.int16).astype(np.float64)
        e[np.abs(e) > SCALE_FACTOR_RANGE] = np.nan
        if ok is not None:
            e[~np.asarray(ok, dtype=bool).reshape(-1, len(p.block_names))[
                :, p.sf_block]] = np.nan
        v = values[:, p.gsf]
        with np.errstate(invalid="ignore", over="ignore"):   # one rounding; inf beyond range
            values[:, p.gsf] = np.where(e < 0, v / 10.0 ** -e, v * 10.0 ** e)

    def decode_batch(self, raw: np.ndarray, ok: np.ndarray | None = None) -> list[TableBatch]:
        """Decode N frames (N x width raw registers) into one TableBatch per table.

        Rows whose every source block failed are dropped, frame by frame (all sentinels: kept).
        """
        return self._tables(*self._cells(raw, ok), ok)

    def raw_from_frames(self, frames) -> tuple[np.ndarray, np.ndarray]:
        """Raw matrix (N x width) and block-ok flags (N x blocks) from codec frames."""
        p = self.program
        raw = np.zeros((len(frames), p.width), dtype=np.uint16)
        ok = np.zeros((len(frames), len(p.block_names)), dtype=bool)
        for b, (name, size) in enumerate(zip(p.block_names, p.block_sizes)):
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
                off = p.block_offset[name]
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
        p = self.program
        summary = []
        counts = oor.sum(axis=0)
        cols = np.flatnonzero(counts)
        if len(cols):  # min/max of the flagged values, all columns at once
            v, o = values[:, cols], oor[:, cols]
            lows = np.where(o, v, np.inf).min(axis=0).tolist()
            highs = np.where(o, v, -np.inf).max(axis=0).tolist()
            for c, lo, hi in zip(cols.tolist(), lows, highs, strict=True):
                f = p.layout[c]
                summary.append({"block": f.block, "address": f.address, "column": f.column,
                                "count": int(counts[c]), "min": lo, "max": hi})
        return summary

    def _tables(self, values: np.ndarray, oor: np.ndarray, exact: dict,
                ok: np.ndarray | None) -> list[TableBatch]:
        p = self.program
        n = values.shape[0]
        out = []
        ok = None if ok is None or np.all(ok) else np.asarray(ok, dtype=bool).reshape(n, -1)
        for table, cells, nrows, ncols, feeds in p.tables:
            v = values[:, cells].reshape(n * nrows, ncols)
            f = oor[:, cells].reshape(n * nrows, ncols)
            frame = np.repeat(np.arange(n), nrows)
            rack = np.tile(np.arange(1, nrows + 1), n) if table == "rack" else None
            ex = table_exact(exact, cells, n, nrows, ncols) if exact else None
            if ok is not None:   # a row stays if any block feeding it (in its frame) was read
                keep = (ok[:, None, :] & feeds[None, :, :]).any(axis=2).reshape(n * nrows)
                if not keep.all():
                    v, f, frame = v[keep], f[keep], frame[keep]
                    rack = rack[keep] if rack is not None else None
                    ex = {j: c[keep] for j, c in ex.items()} if ex else None
            out.append(TableBatch(table, self.map.columns(table), p.is_int[cells][:ncols],
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


@lru_cache(maxsize=64)
def decoder_for(regmap: RegisterMap) -> Decoder:
    """The map's compiled decoder, built once (compiling costs ms; frames come by the thousand)."""
    return Decoder(regmap)
