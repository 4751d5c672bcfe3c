"""Batched, idempotent writes of decoded frames: one atomic statement per batch.

`write_frames` stores one batch; `write_messages` stores several messages in one statement
(group commit) and tells each message exactly which of its rows were stored. By concern:
decoding in ess.decode (`decode_for_write`), row text in rowtext, the statement in statement,
the ledger's part in ledger, per-message crediting in credit, the driver in pg.
"""

from __future__ import annotations

from collections import Counter

from ..decode.grouped import Decoded, decode_for_write
from ..events.store import after_write, batch_touches, lock_params
from ..regmap import RegisterMap
from . import pg
from .credit import Carriers, FrameKey, WriteResult, frame_key
from .ledger import ledger_lines, oor_counts
from .partitions import with_partitions
from .rowtext import key_heads, rows_text
from .statement import Statement, sql_types

__all__ = ["FrameKey", "WriteResult", "frame_key", "write_decoded", "write_frames",
           "write_messages"]


def write_decoded(conn, decoded: Decoded, on_conflict: str = "nothing",
                  published: dict[FrameKey, str] | None = None) -> WriteResult:
    """Store every row of `decoded` and each frame's ledger row in one atomic statement: all of
    them or none. `published` gives a frame's message publish time (ISO 8601).

    The statement ends with the alarm events' lock step (ess.events: the banks' locks, and the
    episodes the batch overlaps); once it has committed, the episodes the rows can change are
    maintained (nearly always: nothing to do, known from that step). `raised` lists the
    episodes inserted. A failure there fails the write; the retry finds the rows stored and
    maintains again.
    """
    result = WriteResult(frames=decoded.frames, out_of_range=list(decoded.out_of_range))
    stmt = Statement()
    lines: list[str] = []
    touched = batch_touches(decoded, rewrite=on_conflict == "update")
    for regmap, group, tables in decoded.groups:
        heads = key_heads(group)
        for tb in tables:
            if not len(tb):
                continue
            stmt.add(tb.table, tb.columns, sql_types(regmap, tb.table), rows_text(tb, heads),
                     on_conflict)
            result.rows[tb.table] = result.rows.get(tb.table, 0) + len(tb)
            result.inserted.setdefault(tb.table, 0)
        lines += ledger_lines(group, oor_counts(group, tables), published, heads)
    if lines:
        stmt.add_ledger("\n".join(lines))
    if touched:
        stmt.add_events(lock_params([t for _, banks in touched for t in banks.values()]))
    locked = None
    if stmt.ctes or lines:
        # partitioned mode: a day without partitions gets them, then one more try
        polls = (f.poll_start_us for _, group, _ in decoded.groups for f in group)
        for t, n, keys in with_partitions(
                conn, lambda: pg.run_prepared(conn, stmt.sql(), stmt.params), polls):
            if t < 0:                # the events' lock step
                locked = keys
                continue
            table = stmt.tables[t]
            result.inserted[table] += n
            for key, count in Counter(keys.split("\n")).items():
                site, bank, us = key.rsplit(",", 2)
                result.stored[(table, (site, int(bank), int(us)))] += count
    result.raised = after_write(conn, touched, locked)
    return result


def write_messages(conn, messages: list[list], maps: dict[tuple[str, int], RegisterMap],
                   on_conflict: str = "nothing",
                   published: list | None = None) -> list[WriteResult]:
    """Decode and store several messages' frames in one atomic statement (all rows or none);
    return one WriteResult per message (credit.py: a frame carried twice is written once and
    credited to its first carrier). `published[m]` is message m's publish time (a datetime or
    None), kept in the ledger row of each frame it carries first.
    """
    carriers = Carriers.of(messages)
    decoded = decode_for_write(carriers.unique, maps, carriers.parts())
    total = write_decoded(conn, decoded, on_conflict, carriers.first_published(published))
    return carriers.credit(decoded, total)


def write_frames(conn, frames, maps: dict[tuple[str, int], RegisterMap],
                 on_conflict: str = "nothing", published=None) -> WriteResult:
    """Decode frames (grouped by map) and store all their rows in one atomic statement.

    The caller resolves maps first. A batch is stored whole or not at all. Frames repeated
    inside the batch are written once and count as duplicates.
    """
    return write_messages(conn, [frames], maps, on_conflict, [published])[0]

