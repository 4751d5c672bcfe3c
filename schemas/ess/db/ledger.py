"""The frame ledger's part of a write: one `frames` row per frame (docs/data-status.md).

The rows go in as one text parameter (one line per frame, like the data tables' rows) into a
data-modifying CTE of the statement that stores the frames' rows, so a frame and its ledger row
are committed together or not at all. A frame whose every block failed gets its ledger row too.
"""

from __future__ import annotations

import numpy as np

from ..wire.crc import as_int4, registers_crc
from .quote import ident
from .rowtext import key_heads
from .schema import LEDGER

_COLUMNS = ("ts", "site_id", "bank_id", "seq", "map_id", "map_version", "poll_us", "published",
            "crc", "failed", "out_of_range")
_CASTS = ("timestamptz", "text", "smallint", "bigint", "text", "smallint", "integer",
          "timestamptz", "integer", None, "smallint")


def crc_of(frame) -> int | None:
    """The register CRC (ess.wire.crc) as a signed int4; None unless every block read ok."""
    crc = registers_crc(frame.blocks)
    return None if crc is None else as_int4(crc)


def failed_text(frame) -> str:
    """`block:kind` of each block that did not read ok, separated by spaces ('' when none)."""
    return " ".join(f"{name}:{b.describe()}" for name, b in frame.blocks.items() if not b.ok)


def _crc_and_failed(frame) -> str:
    """The ledger line's `crc,failed` fields (crc empty unless every block read ok)."""
    crc = crc_of(frame)
    return f",{failed_text(frame)}" if crc is None else f"{crc},"


def oor_counts(group: list, tables) -> list[int]:
    """Out-of-range cells per frame of a decoded group (its TableBatches)."""
    total = np.zeros(len(group), dtype=np.int64)
    for tb in tables:
        if len(tb) and tb.out_of_range.size:
            total += np.bincount(tb.frame, weights=tb.out_of_range.sum(axis=1),
                                 minlength=len(group)).astype(np.int64)
    return total.tolist()


def ledger_lines(group: list, oor: list[int], published: dict | None,
                 heads: list[str] | None = None) -> list[str]:
    """One ledger line per frame: the fields of `_COLUMNS`, comma-separated (empty = NULL).

    `heads[i]` is frame i's "ts,site,bank," as the data tables' rows already have it."""
    if heads is None:
        heads = key_heads(group)
    pub = published or {}
    return [f"{head}{f.seq},{f.map_id},{f.map_version},"
            f"{max(0, f.poll_end_us - f.poll_start_us)},"
            f"{pub.get((f.site_id, f.bank_id, f.poll_start_us), '') if pub else ''},"
            f"{_crc_and_failed(f)},{n or ''}"
            for f, head, n in zip(group, heads, oor, strict=True)]


def ledger_cte(position: int) -> str:
    """`INSERT INTO frames ... ON CONFLICT DO NOTHING` from parameter $position+1."""
    fields = []
    for i, cast in enumerate(_CASTS):
        fields.append(f"string_to_array((r.a)[{i + 1}], ' ')" if cast is None
                      else f"(r.a)[{i + 1}]::{cast}")
    names = [*_COLUMNS, "committed"]
    fields.append("clock_timestamp()")
    return (f"{ident('ledger')} AS (INSERT INTO {ident(LEDGER.name)} "
            f"({', '.join(ident(n) for n in names)}) "
            f"SELECT {', '.join(fields)} FROM (SELECT string_to_array(l, ',', '') AS a "
            f"FROM string_to_table(${position + 1}::text, E'\\n') AS l OFFSET 0) AS r "
            "ON CONFLICT DO NOTHING)")
