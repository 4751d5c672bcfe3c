"""Helpers of the events tests: a small map with one alarm of each kind, frames of it, and an
in-memory Store with the semantics of the PostgreSQL one (rows stored once, episodes by key)."""

from __future__ import annotations

import numpy as np
from ess.codec import BlockData, BlockStatus, Frame
from ess.decode import decoder_for
from ess.events.episodes import Episode, derive
from ess.events.states import touches
from ess.events.window import Rows, maintain_bank
from ess.regmap import parse_map

SITE, BANK = "site-t", 1
NULL16 = 0xFFFF          # the map's uint16 sentinel: stored as NULL
NULL_T = 0x8000          # int16 sentinel

MAP = parse_map({
    "map_id": "alarms-test", "version": 1, "sentinels": {"uint16": NULL16, "int16": NULL_T},
    "blocks": [{"name": "A", "start": 0, "count": 4, "scaled": True, "registers": [
        {"address": 0, "table": "bank", "column": "flag", "type": "uint16"},
        {"address": 1, "table": "bank", "column": "temp", "type": "int16", "scale": 0.1},
        {"address": 2, "table": "rack", "column": "rack_flag", "type": "uint16", "rack": 1},
        {"address": 3, "table": "rack", "column": "rack_flag", "type": "uint16", "rack": 2}]}],
    "alarms": [
        {"name": "flag_on", "column": "flag", "severity": "fault"},
        {"name": "temp_high", "column": "temp", "severity": "warning", "above": 50,
         "hysteresis": 5, "for": "3s"},
        {"name": "rack_flag_on", "column": "rack_flag", "severity": "fault", "for": 2}]})
T0 = 1_700_000_000 * 1_000_000


def frame(t: int, regs: list[int] | None) -> Frame:
    """The frame polled at second t: registers [flag, temp, rack1, rack2], None = block failed."""
    us = T0 + t * 1_000_000
    block = (BlockData(BlockStatus.TIMEOUT) if regs is None
             else BlockData(registers=Frame.registers_to_bytes(regs)))
    return Frame(SITE, BANK, t, us, us + 20_000, MAP.map_id, MAP.version, {"A": block})


class MemoryStore:
    """The window's Store in memory: rows keyed like the tables (written once), episodes."""

    def __init__(self):
        self.rows_: dict[tuple, dict[str, float]] = {}     # (table, ts, rack) -> values
        self.events: list[Episode] = []
        self.inserted: list[Episode] = []

    def write(self, frames: list[Frame]) -> list[Episode]:
        """Store frames (a frame already stored keeps its rows), then maintain the events."""
        tables, _ = decoder_for(MAP).decode_frames(frames)
        for tb in tables:
            for i, values in enumerate(tb.values):
                rack = int(tb.rack[i]) if tb.rack is not None else None
                key = (tb.table, frames[tb.frame[i]].poll_start_us, rack)
                self.rows_.setdefault(key, dict(zip(tb.columns, values.tolist())))
        raised = []
        for t in touches(MAP, frames, tables).values():
            stored = self.episodes(SITE, BANK, [a.name for a in MAP.alarms], t.first, t.last)
            steady = t.steady()     # as the lock function does: such episodes left out
            covered = {e.key for e in stored if e.key in steady and e.raised < t.first
                       and e.end > t.last}
            raised += maintain_bank(self, MAP, t, [e for e in stored if e.key not in covered],
                                    covered)
        return raised

    def episodes(self, site, bank, alarms, lo, hi):
        return sorted((e for e in self.events if e.overlaps(lo, hi) and e.alarm in alarms),
                      key=lambda e: e.since)

    def next_ts(self, site, bank, after):
        ts = [k[1] for k in self.rows_ if k[1] > after]
        return min(ts) if ts else None

    def rows(self, site, bank, table, columns, lo, hi):
        keys = sorted((k for k in self.rows_ if k[0] == table and lo <= k[1] <= hi),
                      key=lambda k: (k[1], k[2] or 0))
        return Rows(np.array([k[1] for k in keys], dtype=np.int64),
                    np.array([k[2] for k in keys], dtype=np.int64) if table == "rack" else None,
                    np.array([[self.rows_[k][c] for c in columns] for k in keys],
                             dtype=np.float64).reshape(len(keys), len(columns)), columns)

    def last_known(self, site, bank, table, column, rack, before):
        ts = [k[1] for k, v in self.rows_.items() if k[0] == table and k[2] == rack
              and k[1] < before and not np.isnan(v[column])]
        return max(ts) if ts else None

    def apply(self, delete, update, insert):
        for e in delete:
            self.events.remove(e)
        for old, new in update:
            self.events[self.events.index(old)] = new
        self.events += insert
        self.inserted += insert
        ids = [(e.alarm, e.rack, e.since) for e in self.events]
        assert len(ids) == len(set(ids)), "two episodes of one key start at one poll"


def expected(store: MemoryStore) -> list[Episode]:
    """The episodes of every alarm key derived from all of the store's rows at once."""
    out = []
    for alarm in MAP.alarms:
        for rack in ([1, 2] if alarm.table == "rack" else [None]):
            keys = sorted(k for k in store.rows_ if k[0] == alarm.table and k[2] == rack)
            ts = np.array([k[1] for k in keys], dtype=np.int64)
            values = np.array([store.rows_[k][alarm.column] for k in keys], dtype=np.float64)
            out += derive(alarm, (SITE, BANK, rack), ts, values)
    return sorted(out, key=lambda e: (e.alarm, e.rack or 0, e.since))
