"""Per-message crediting: several messages' frames written in one statement (group commit),
and each message told exactly which of its rows were stored.

A frame carried more than once (by two messages, or twice by one) is written once and credited
to its first carrier: the other copies count as duplicates. Each message keeps its own
out-of-range summary, and its publish time goes into the ledger row of each frame it carries
first.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..decode.grouped import Decoded

FrameKey = tuple[str, int, int]   # (site_id, bank_id, poll start in microseconds)


def frame_key(frame) -> FrameKey:
    return (frame.site_id, frame.bank_id, frame.poll_start_us)


@dataclass
class WriteResult:
    """What one write did, per table; `stored` breaks it down by (table, frame)."""

    frames: int = 0
    rows: dict[str, int] = field(default_factory=dict)        # rows offered
    inserted: dict[str, int] = field(default_factory=dict)    # rows stored (or updated)
    out_of_range: list[dict] = field(default_factory=list)
    stored: Counter = field(default_factory=Counter)          # (table, FrameKey) -> rows
    raised: list = field(default_factory=list)                # alarm episodes raised (ess.events)

    @property
    def duplicates(self) -> int:
        return sum(self.rows.values()) - sum(self.inserted.values())


@dataclass
class Carriers:
    """Who carries which frame: each frame once (`unique`, in the order first carried), each
    message's frames as indices into it, and the frames each message carries first."""

    messages: list[list]
    unique: list = field(default_factory=list)
    carried: list[dict[FrameKey, int]] = field(default_factory=list)
    owned: list[set[FrameKey]] = field(default_factory=list)

    @classmethod
    def of(cls, messages: list[list]) -> Carriers:
        c = cls(messages)
        position: dict[FrameKey, int] = {}          # frame -> its index in `unique`
        for frames in messages:
            mine: dict[FrameKey, int] = {}
            c.owned.append(set())
            for f in frames:
                key = frame_key(f)
                if key not in position:
                    position[key] = len(c.unique)
                    c.unique.append(f)
                    c.owned[-1].add(key)
                mine[key] = position[key]
            c.carried.append(mine)
        return c

    def parts(self) -> list[list[int]]:
        """Per message, the indices into `unique` of its frames (one out-of-range summary each)."""
        return [list(c.values()) for c in self.carried]

    def first_published(self, published: list | None) -> dict[FrameKey, str]:
        """Each frame's publish time (ISO 8601): that of the message that carries it first."""
        return {k: t.isoformat() for m, t in enumerate(published or []) if t is not None
                for k in self.owned[m]}

    def credit(self, decoded: Decoded, total: WriteResult) -> list[WriteResult]:
        """One WriteResult per message from the statement's `total`: rows offered by each of
        its frames, rows stored credited to the frames it carries first."""
        offered: Counter = Counter()               # (table, frame key) -> rows
        for _, group, tables in decoded.groups:
            for tb in tables:
                counts = np.bincount(tb.frame, minlength=len(group)).tolist()
                for f, n in zip(group, counts):
                    if n:
                        offered[(tb.table, frame_key(f))] += n
        results = []
        for m, frames in enumerate(self.messages):
            res = WriteResult(frames=len(frames), out_of_range=decoded.out_of_range[m])
            keys = [frame_key(f) for f in frames]
            for table in total.rows:
                res.rows[table] = sum(offered[(table, k)] for k in keys)
                res.inserted[table] = sum(total.stored[(table, k)] for k in self.owned[m])
                for k in self.owned[m]:
                    if total.stored[(table, k)]:
                        res.stored[(table, k)] = total.stored[(table, k)]
            results.append(res)
        for e in total.raised:      # to the message carrying the raising poll first, else the first
            owner = next((m for m, own in enumerate(self.owned)
                          if (e.site, e.bank, e.raised) in own), 0)
            results[owner].raised.append(e)
        return results
