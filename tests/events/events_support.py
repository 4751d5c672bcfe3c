"""Helpers of the events tests: a small map with one alarm of each kind, frames of it, and an
in-memory Store with the semantics of the PostgreSQL one (rows stored once, episodes by key),
whose writes go as the writer's do: the rows' statement with its lock step (`commit`), then
the window (`maintain`), the two apart so that tests can interleave concurrent writers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from ess.codec import BlockData, BlockStatus, Frame
from ess.decode import decoder_for
from ess.events.episodes import Episode, derive
from ess.events.states import touches
from ess.events.store import Locked, parse_locked, quiet
from ess.events.window import Rows, maintain_bank
from ess.regmap import RegisterMap, parse_map

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


def order_key(e: Episode) -> tuple:
    return (e.site, e.bank, e.alarm, e.rack or 0, e.since)


def _lock_line(e: Episode) -> str:
    """An episode as a line of the lock function's text (sql.lock_text)."""
    return ",".join([e.site, str(e.bank), "" if e.rack is None else str(e.rack), e.alarm,
                     e.severity, str(e.since), str(e.raised), repr(e.raised_value),
                     "" if e.cleared is None else str(e.cleared),
                     "" if e.cleared_value is None else repr(e.cleared_value),
                     "" if e.announced is None else str(e.announced), ""])


class MemoryStore:
    """The window's Store in memory: rows keyed like the tables (written once), episodes."""

    def __init__(self, regmap: RegisterMap = MAP):
        self.regmap = regmap
        self.rows_: dict[tuple, dict[str, float]] = {}  # (site, bank, table, ts, rack) -> values
        self.polls: set[tuple[str, int, int]] = set()   # the ledger: (site, bank, ts)
        self.events: list[Episode] = []
        self.inserted: list[Episode] = []
        self.deleted: list[Episode] = []

    def commit(self, frames: list[Frame], rewrite: bool = False) -> tuple[dict, Locked]:
        """The rows' statement: store frames (a frame already stored keeps its rows; with
        `rewrite`, as `ess redecode --map`, they replace them), then the lock step; returns what
        `maintain` needs."""
        tables, _ = decoder_for(self.regmap).decode_frames(frames)
        self.polls.update((f.site_id, f.bank_id, f.poll_start_us) for f in frames)
        for tb in tables:
            for i, values in enumerate(tb.values):
                f = frames[tb.frame[i]]
                rack = int(tb.rack[i]) if tb.rack is not None else None
                key = (f.site_id, f.bank_id, tb.table, f.poll_start_us, rack)
                if rewrite or key not in self.rows_:
                    self.rows_[key] = dict(zip(tb.columns, values.tolist()))
        by_bank = touches(self.regmap, frames, tables, rewrite)
        return by_bank, self.lock_read(list(by_bank.values()))

    def maintain(self, pending: tuple[dict, Locked]) -> list[Episode]:
        """After the commit, as ess.events.store.maintain: the episodes raised."""
        by_bank, locked = pending
        if not by_bank or quiet(self.regmap, by_bank, locked):
            return []
        batch = list(by_bank.values())
        locked = self.lock_read(batch)
        return [e for t in batch for e in maintain_bank(
            self, self.regmap, t, locked.episodes.get((t.site, t.bank), []),
            locked.covered.get((t.site, t.bank), set()))]

    def write(self, frames: list[Frame], rewrite: bool = False) -> list[Episode]:
        return self.maintain(self.commit(frames, rewrite))

    def lock_read(self, batch) -> Locked:
        """What ess_events_lock returns (sql.LOCK_FUNCTION_SQL), parsed as the writer does."""
        lines = []
        for t in batch:
            steady = {f"{a}/{r or 0}" for a, r in t.steady()}
            mine = [e for e in self.events if (e.site, e.bank) == (t.site, t.bank)]
            across = {f"{e.alarm}/{e.rack or 0}" for e in mine
                      if e.raised < t.first and e.end > t.last}
            lines += [_lock_line(e) for e in mine if e.overlaps(t.first, t.last)
                      and not (f"{e.alarm}/{e.rack or 0}" in steady and e.raised < t.first
                               and e.end > t.last)]
            lines.append(",".join([t.site, str(t.bank)] + [""] * 9
                                  + [" ".join(sorted(steady - across))]))
        return parse_locked("\n".join(lines), batch)

    def episodes(self, site, bank, alarms, lo, hi):
        return sorted((e for e in self.events if (e.site, e.bank) == (site, bank)
                       and e.overlaps(lo, hi) and e.alarm in alarms), key=lambda e: e.since)

    def next_ts(self, site, bank, after):
        ts = [t for s, b, t in self.polls if (s, b) == (site, bank) and t > after]
        return min(ts) if ts else None

    def rows(self, site, bank, table, columns, lo, hi):
        keys = sorted((k for k in self.rows_ if k[:3] == (site, bank, table)
                       and lo <= k[3] <= hi), key=lambda k: (k[3], k[4] or 0))
        return Rows(np.array([k[3] for k in keys], dtype=np.int64),
                    np.array([k[4] for k in keys], dtype=np.int64) if table == "rack" else None,
                    np.array([[self.rows_[k][c] for c in columns] for k in keys],
                             dtype=np.float64).reshape(len(keys), len(columns)), columns)

    def last_known(self, site, bank, table, column, rack, before):
        ts = [k[3] for k, v in self.rows_.items() if k[:3] == (site, bank, table)
              and k[4] == rack and k[3] < before and not np.isnan(v[column])]
        return max(ts) if ts else None

    def apply(self, delete, update, insert):
        """As PgStore.apply: an insert is announced at its raise, an update keeps that."""
        for e in delete:
            self.events.remove(e)
        for old, new in update:
            self.events[self.events.index(old)] = replace(new, announced=old.announced)
        self.events += [replace(e, announced=e.raised) for e in insert]
        self.inserted += insert
        self.deleted += delete
        ids = [order_key(e) for e in self.events]
        assert len(ids) == len(set(ids)), "two episodes of one key start at one poll"


def expected(store: MemoryStore) -> list[Episode]:
    """The episodes of every alarm key derived from all of the store's rows at once."""
    out = []
    for site, bank in sorted({k[:2] for k in store.rows_}):
        for alarm in store.regmap.alarms:
            keys = sorted((k for k in store.rows_ if k[:3] == (site, bank, alarm.table)),
                          key=lambda k: (k[4] or 0, k[3]))
            for rack in sorted({k[4] for k in keys}, key=lambda r: r or 0):
                mine = [k for k in keys if k[4] == rack]
                ts = np.array([k[3] for k in mine], dtype=np.int64)
                values = np.array([store.rows_[k][alarm.column] for k in mine],
                                  dtype=np.float64)
                out += derive(alarm, (site, bank, rack), ts, values)
    return sorted(out, key=order_key)


def stored(store: MemoryStore) -> list[Episode]:
    """The store's episodes in the order of `expected`."""
    return sorted(store.events, key=order_key)
