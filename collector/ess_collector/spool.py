"""Store-and-forward spool: frames wait in SQLite (WAL) until Pub/Sub confirms them.

A frame is committed here (with its sequence number) before it is published and deleted only
after its publish future succeeds, so a `kill -9` at any point loses nothing; a frame may then
be published twice, with identical bytes. Sequence numbers live in the same database, so they
survive restarts, and a sequence number once given is never given again: frames dropped by a
bound, or lost because a write failed (a full disk), leave a gap the ledger counts as lost
(docs/data-status.md). The spool is bounded by size and age: the oldest frames are dropped first
and an ERROR names how many, their banks' seq ranges and the poll-time range.

A frame is encoded once: the body stored here is the body published (`ess.codec.pack_bodies`).

All SQLite work runs in one worker thread; `AsyncSpool` batches concurrent appends into one
transaction (group commit) so hundreds of devices cost one fsync per tick.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ess.codec import Frame, encode_frame
from ess.logs import event
from ess.wire.times import iso_z

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    bank INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    poll_us INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_site ON frames (site, id);
CREATE TABLE IF NOT EXISTS seq (
    site TEXT NOT NULL,
    bank INTEGER NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (site, bank)
);
CREATE TABLE IF NOT EXISTS corrupt (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    body BLOB NOT NULL,
    error TEXT NOT NULL,
    at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Dropped:
    """Frames a bound forced out of the spool (or a failed write lost)."""

    count: int
    first_poll_us: int
    last_poll_us: int
    reason: str
    seqs: str = ""          # "site/bankB first..last, ..." of the frames dropped
    code: str = "spool_full"   # spool_age | spool_full | spool_write_failed (logged `reason`)


class Stored(NamedTuple):
    """A frame committed to the spool: its row id, the frame and the body stored (and sent)."""

    id: int
    frame: Frame
    body: bytes


class SpoolWriteFailed(sqlite3.Error):
    """A write failed (e.g. the disk is full): its frames are lost, their seqs stay used."""

    def __init__(self, cause: sqlite3.Error, rows: list[tuple]):
        super().__init__(str(cause))
        self.lost = Dropped(len(rows), min(r[3] for r in rows), max(r[3] for r in rows),
                            f"spool write failed: {cause}", seq_ranges(r[:3] for r in rows),
                            "spool_write_failed")


def seq_ranges(rows) -> str:
    """`site/bankB first..last` per bank of (site, bank, seq) rows, contiguous runs merged."""
    runs: dict[tuple[str, int], list[list[int]]] = {}
    for site, bank, seq in sorted(rows):
        r = runs.setdefault((site, bank), [])
        if r and seq == r[-1][1] + 1:
            r[-1][1] = seq
        else:
            r.append([seq, seq])
    return ", ".join(f"{site}/bank{bank} {a}..{b}" if a != b else f"{site}/bank{bank} {a}"
                     for (site, bank), r in sorted(runs.items()) for a, b in r)


class Spool:
    """The SQLite spool (blocking API; use from one thread at a time)."""

    def __init__(self, path: str | Path, max_bytes: int = 1 << 30,
                 max_age: float = 7 * 86400.0):
        self.path, self.max_bytes, self.max_age = Path(path), max_bytes, max_age
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self.seqs: dict[tuple[str, int], int] = {
            (s, b): last for s, b, last in self.db.execute("SELECT site, bank, last FROM seq")}
        self.total_bytes = self.db.execute(
            "SELECT coalesce(sum(length(body)), 0) FROM frames").fetchone()[0]
        self._unsaved: set[tuple[str, int]] = set()     # banks whose last seq is not saved

    def close(self) -> None:
        self.db.close()

    def append(self, frames: list[Frame]) -> list[Stored]:
        """Give each frame the next sequence number of its bank, store them in one transaction.

        The numbers are used even when the write fails (SpoolWriteFailed: the frames are lost,
        and their numbers stay a gap); they are saved with the next write that succeeds.
        """
        seqs = dict(self.seqs)
        rows = []
        for f in frames:
            key = (f.site_id, f.bank_id)
            f.seq = seqs.get(key, 0) + 1
            seqs[key] = f.seq
            rows.append((f.site_id, f.bank_id, f.seq, f.poll_start_us, encode_frame(f)))
        changed = {k for k, last in seqs.items() if self.seqs.get(k) != last} | self._unsaved
        self.seqs = seqs
        try:
            ids = self._insert(rows, changed)
        except sqlite3.Error as exc:
            self._unsaved = set() if self._save_seqs_alone(changed) else changed
            raise SpoolWriteFailed(exc, rows) from exc
        self._unsaved = set()
        self.total_bytes += sum(len(r[4]) for r in rows)
        return [Stored(i, f, r[4]) for i, f, r in zip(ids, frames, rows, strict=True)]

    def _insert(self, rows: list[tuple], changed: set[tuple[str, int]]) -> list[int]:
        ids = []
        with self.db:  # BEGIN ... COMMIT (ROLLBACK on error)
            self.db.execute("BEGIN IMMEDIATE")
            for row in rows:
                ids.append(self.db.execute(
                    "INSERT INTO frames (site, bank, seq, poll_us, body) VALUES (?, ?, ?, ?, ?)",
                    row).lastrowid)
            self._save_seqs(changed)
        return ids

    def _save_seqs(self, keys) -> None:
        self.db.executemany(
            "INSERT INTO seq (site, bank, last) VALUES (?, ?, ?) "
            "ON CONFLICT (site, bank) DO UPDATE SET last = max(last, excluded.last)",
            [(s, b, self.seqs[(s, b)]) for s, b in sorted(keys)])

    def _save_seqs_alone(self, keys) -> bool:
        """After a failed write: try to save just the numbers used (a few bytes; a full disk
        may refuse them too, then the next write that succeeds saves them)."""
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self._save_seqs(keys)
        except sqlite3.Error:
            return False
        return True

    def delete(self, ids: list[int]) -> None:
        """Forget frames whose publish succeeded."""
        if not ids:
            return
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                marks = ",".join("?" * len(chunk))
                size = self.db.execute(f"SELECT coalesce(sum(length(body)), 0) FROM frames "
                                       f"WHERE id IN ({marks})", chunk).fetchone()[0]
                self.db.execute(f"DELETE FROM frames WHERE id IN ({marks})", chunk)
                self.total_bytes -= size

    def set_aside(self, row_id: int, error: str) -> None:
        """Move an undecodable frame row to the `corrupt` table (its bytes kept) for inspection."""
        import time

        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT site, body FROM frames WHERE id = ?",
                                  (row_id,)).fetchone()
            if row is None:
                return
            self.db.execute("INSERT OR REPLACE INTO corrupt (id, site, body, error, at) "
                            "VALUES (?, ?, ?, ?, ?)", (row_id, row[0], row[1], error, time.time()))
            self.db.execute("DELETE FROM frames WHERE id = ?", (row_id,))
        self.total_bytes -= len(row[1])

    def corrupt(self) -> list[tuple[int, str, bytes, str]]:
        """Rows set aside: (id, site, body, error)."""
        return self.db.execute("SELECT id, site, body, error FROM corrupt ORDER BY id").fetchall()

    def read(self, site: str, after: int, limit: int) -> list[tuple[int, int, bytes]]:
        """The oldest frames of a site with id > after, as (id, poll start µs, frame body)."""
        return self.db.execute("SELECT id, poll_us, body FROM frames WHERE site = ? AND id > ? "
                               "ORDER BY id LIMIT ?", (site, after, limit)).fetchall()

    def count(self, site: str | None = None) -> int:
        """Frames waiting (for one site or all)."""
        if site is None:
            return self.db.execute("SELECT count(*) FROM frames").fetchone()[0]
        return self.db.execute("SELECT count(*) FROM frames WHERE site = ?",
                               (site,)).fetchone()[0]

    def sites(self) -> list[str]:
        """Sites with frames waiting."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT site FROM frames")]

    def _drop(self, where: str, args: tuple, reason: str, code: str) -> Dropped | None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            n, first, last, size = self.db.execute(
                f"SELECT count(*), min(poll_us), max(poll_us), coalesce(sum(length(body)), 0) "
                f"FROM frames WHERE {where}", args).fetchone()
            if not n:
                return None
            seqs = seq_ranges(self.db.execute(f"SELECT site, bank, seq FROM frames WHERE {where}",
                                              args))
            self.db.execute(f"DELETE FROM frames WHERE {where}", args)
        self.total_bytes -= size
        return Dropped(n, first, last, reason, seqs, code)

    def enforce_bounds(self, now: float | None = None) -> list[Dropped]:
        """Drop frames older than max_age, then the oldest until under max_bytes (to 90 %)."""
        now = time.time() if now is None else now
        out = []
        d = self._drop("poll_us < ?", (int((now - self.max_age) * 1e6),),
                       f"older than {self.max_age:.0f} s", "spool_age")
        if d:
            out.append(d)
        if self.total_bytes > self.max_bytes:
            excess = self.total_bytes - int(self.max_bytes * 0.9)
            cut, acc = None, 0
            for fid, size in self.db.execute("SELECT id, length(body) FROM frames ORDER BY id"):
                acc += size
                cut = fid
                if acc >= excess:
                    break
            if cut is not None:
                d = self._drop("id <= ?", (cut,), f"spool above {self.max_bytes} bytes",
                               "spool_full")
                if d:
                    out.append(d)
        for d in out:
            log_dropped(d)
        return out


def log_dropped(d: Dropped) -> None:
    """The ERROR line of frames the spool lost: how many, why, which seqs, when polled. Their
    seqs are never given again, so the ledger counts them as lost (stage=spool, `frames`)."""
    event(log, f"spool dropped {d.count} frames ({d.reason}): {d.seqs}; polled "
          f"{iso_z(d.first_poll_us)} .. {iso_z(d.last_poll_us)}", stage="spool",
          level=logging.ERROR, frames=d.count, reason=d.code, error=d.reason, seqs=d.seqs,
          first_poll=iso_z(d.first_poll_us), last_poll=iso_z(d.last_poll_us))


class AsyncSpool:
    """Asyncio front of a Spool: one worker thread, group commit for appends."""

    def __init__(self, spool: Spool, on_committed: Callable[[list[Stored]], None],
                 bounds_every: float = 10.0):
        self.spool, self.on_committed = spool, on_committed
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._pending: list[Frame] = []
        self._flusher: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._bounds_every, self._bounds_at = bounds_every, 0.0
        self._lock = threading.Lock()
        self.commits = 0

    def _run(self, fn, *args):
        return asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def submit(self, frame: Frame) -> None:
        """Queue a frame for the next group commit (never blocks the caller)."""
        self._pending.append(frame)
        if self._flusher is None or self._flusher.done():
            self._idle.clear()
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                stored = await self._run(self.spool.append, batch)
            except SpoolWriteFailed as exc:
                log_dropped(exc.lost)
                continue
            except Exception as exc:  # noqa: BLE001 - before any seq was given; keep flushing
                event(log, f"spool write failed, {len(batch)} frames lost: {exc}",
                      stage="spool", level=logging.ERROR, frames=len(batch), error=str(exc),
                      reason="spool_write_failed")
                continue
            self.commits += 1
            self.on_committed(stored)
            now = time.monotonic()
            if (self.spool.total_bytes > self.spool.max_bytes
                    or now - self._bounds_at >= self._bounds_every):
                self._bounds_at = now
                await self._run(self.spool.enforce_bounds)
        self._idle.set()

    async def drained(self) -> None:
        """Wait until every submitted frame is committed."""
        await self._idle.wait()

    async def delete(self, ids: list[int]) -> None:
        await self._run(self.spool.delete, ids)

    async def read(self, site: str, after: int, limit: int) -> list[tuple[int, int, bytes]]:
        return await self._run(self.spool.read, site, after, limit)

    async def count(self, site: str | None = None) -> int:
        return await self._run(self.spool.count, site)

    async def set_aside(self, row_id: int, error: str) -> None:
        await self._run(self.spool.set_aside, row_id, error)

    async def close(self) -> None:
        await self.drained()
        await self._run(self.spool.close)
        self.pool.shutdown(wait=True)
