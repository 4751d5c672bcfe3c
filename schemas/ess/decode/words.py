"""Multi-register values: words put in order, bytes swapped, then read as one number (numpy).

Byte orders as Telegraf names them: ABCD big-endian, CDAB word-swapped, BADC byte-swapped, DCBA
little-endian (for 64-bit types ABCDEFGH, GHEFCDAB, BADCFEHG, HGFEDCBA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..regmap import Field
from ..regmap.model import BYTE_ORDERS

_VIEWS = {2: (np.uint32, np.int32, np.float32), 4: (np.uint64, np.int64, np.float64)}
TYPES_BY_WIDTH = {2: ("int32", "uint32", "float32"), 4: ("int64", "uint64", "float64")}


@dataclass(frozen=True)
class WideGroup:
    """The cells of one register width (2 or 4 words), compiled for vectorised decoding."""

    width: int
    cells: np.ndarray       # cell indices
    words: np.ndarray       # cells x width raw indices, most significant word first
    swap: np.ndarray        # per cell: swap the bytes of each word
    signed: np.ndarray
    floating: np.ndarray
    sentinel: np.ndarray    # raw pattern per cell (only where has_sentinel)
    has_sentinel: np.ndarray
    exact: np.ndarray       # positions (into cells) of integers to keep exactly (64-bit)


def compile_group(width: int, layout: list[Field], src: np.ndarray,
                  is_int: np.ndarray) -> WideGroup | None:
    """The group of `layout` cells of a `width`-word type; None when there are none."""
    kinds = TYPES_BY_WIDTH[width]
    cells = np.array([i for i, f in enumerate(layout) if f.type in kinds], dtype=np.intp)
    if not cells.size:
        return None
    fields = [layout[i] for i in cells]
    little = np.array([BYTE_ORDERS[f.byte_order][0] for f in fields], dtype=bool)
    order = np.arange(width)
    words = src[cells][:, None] + np.where(little[:, None], order[::-1], order)
    exact = np.flatnonzero(is_int[cells]) if width == 4 else np.array([], dtype=np.intp)
    return WideGroup(
        width, cells, words.astype(np.intp),
        np.array([BYTE_ORDERS[f.byte_order][1] for f in fields], dtype=bool),
        np.array([f.type.startswith("int") for f in fields], dtype=bool),
        np.array([f.type.startswith("float") for f in fields], dtype=bool),
        np.array([f.sentinel or 0 for f in fields], dtype=_VIEWS[width][0]),
        np.array([f.sentinel is not None for f in fields], dtype=bool), exact)


def assemble(g: WideGroup, raw: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Values (N x cells, NaN for sentinels) and exact integers {cell: per-frame objects}."""
    words = raw[:, g.words]
    if g.swap.any():
        words = np.where(g.swap[None, :, None], (words >> 8) | (words << 8), words)
    utype, itype, ftype = _VIEWS[g.width]
    wide = words.astype(utype)
    pattern = wide[..., 0]
    for k in range(1, g.width):
        pattern = (pattern << utype(16)) | wide[..., k]
    pattern = np.ascontiguousarray(pattern)
    v = pattern.astype(np.float64)
    if g.signed.any():
        v = np.where(g.signed, pattern.view(itype), v)
    if g.floating.any():
        v = np.where(g.floating, pattern.view(ftype), v)
    hit = None
    if g.has_sentinel.any():
        hit = g.has_sentinel & (pattern == g.sentinel)
        v = np.where(hit, np.nan, v)
    exact = {}
    for j in g.exact.tolist():
        col = (pattern[:, j].view(itype) if g.signed[j] else pattern[:, j]).astype(object)
        if hit is not None:
            col[hit[:, j]] = None
        exact[int(g.cells[j])] = col
    return v, exact
