"""Frames of several maps decoded in one call, grouped by map, ready to be written."""

from __future__ import annotations

from dataclasses import dataclass

from ..regmap import RegisterMap
from .decoder import TableBatch, decoder_for


@dataclass
class Decoded:
    """Frames decoded and ready to write: per map, its frames and one TableBatch per table."""

    groups: list[tuple[RegisterMap, list, list[TableBatch]]]
    out_of_range: list        # the summary; with `parts`, one summary per part
    frames: int


def decode_for_write(frames, maps: dict[tuple[str, int], RegisterMap],
                     parts: list[list[int]] | None = None) -> Decoded:
    """Decode frames, grouped by their map (the caller has checked every map is known).

    `parts` (lists of indices into `frames`) asks for one out-of-range summary per part.
    """
    by_map: dict[tuple[str, int], list[int]] = {}
    for i, f in enumerate(frames):
        by_map.setdefault((f.map_id, f.map_version), []).append(i)
    groups: list = []
    summary: list = [[] for _ in parts] if parts is not None else []
    for key, idx in by_map.items():
        group = [frames[i] for i in idx]
        local = None
        if parts is not None:
            where = {i: n for n, i in enumerate(idx)}
            local = [[where[i] for i in p if i in where] for p in parts]
        tables, oor = decoder_for(maps[key]).decode_frames(group, local)
        groups.append((maps[key], group, tables))
        if parts is None:
            summary += oor
        else:
            for mine, part in zip(summary, oor, strict=True):
                mine += part
    return Decoded(groups, summary, len(frames))
