"""Replay archived raw frames through the decoder into a database, idempotently.

Objects are found by their day folder (`YYYY-MM-DD/` under the source root): a frame polled in
[since, until) is published no earlier than its poll, and at most `max_lag` later (a collector's
spool). Frames are then filtered by poll time. Without a new map, rows already stored are kept
(`ON CONFLICT DO NOTHING`); with one, they are rewritten (`DO UPDATE`). The writer maintains the
alarm episodes the rows can change (ess.events); a replay logs no event line per episode (the
episodes are history), only how many it raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ess import codec
from ess.db.rollup import rebuild
from ess.db.writer import write_frames
from ess.decode import DecodeError
from ess.errors import PermanentError
from ess.frame_checks import FrameChecks
from ess.logs import event
from ess.regmap import RegisterMap
from ess.sites import SitesConfig
from ess.wire.times import to_us

from ..objstore import ObjectStore, open_store
from .layout import decode_records, object_day

log = logging.getLogger("ess.redecode")
DEFAULT_MAX_LAG = timedelta(days=7)


@dataclass
class RedecodeResult:
    """Counts of one replay."""

    objects: int = 0
    messages: int = 0
    frames: int = 0
    rows: int = 0
    written: int = 0
    raised: int = 0           # alarm episodes the replayed rows raised (ess.events)
    skipped: dict[str, int] = field(default_factory=dict)   # reason -> messages

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def archive_objects(store: ObjectStore, since: datetime, until: datetime,
                    max_lag: timedelta = DEFAULT_MAX_LAG) -> list[str]:
    """Archive objects that can hold frames polled in [since, until)."""
    first = (since - timedelta(hours=1)).astimezone(UTC).date()
    last = (until + max_lag).astimezone(UTC).date()
    names, day = [], first
    while day <= last:
        names += [n for n in store.list(f"{day.isoformat()}/") if object_day(n) == day]
        day += timedelta(days=1)
    return names


def frames_in_range(store: ObjectStore, names: list[str], since: datetime, until: datetime,
                    sites: SitesConfig | None, maps: dict, result: RedecodeResult,
                    progress=None) -> Iterator[codec.Frame]:
    """Frames polled in [since, until) from valid archived messages."""
    lo, hi = to_us(since), to_us(until)
    checks = FrameChecks(sites, maps)   # without sites: the database's ranges and the maps
    for name in names:
        result.objects += 1
        for rec in decode_records(store.get(name)):
            result.messages += 1
            try:
                frames = codec.decode_frames(rec.data)
                checks.check(frames, rec.publish_time)   # as ingest checked it
            except PermanentError as exc:
                result.skip(exc.reason)
                continue
            for f in frames:
                if lo <= f.poll_start_us < hi:
                    yield f
        if progress is not None:
            progress.update(1)
            progress.set_postfix(frames=result.frames, rows=result.written, refresh=False)


def redecode(conn, source: str | ObjectStore, since: datetime, until: datetime,
             maps: dict[tuple[str, int], RegisterMap], *, sites: SitesConfig | None = None,
             update: bool = False, batch: int = 500, max_lag: timedelta = DEFAULT_MAX_LAG,
             progress: bool = True, names: list[str] | None = None) -> RedecodeResult:
    """Store every archived frame polled in [since, until); rewrite rows when `update`.
    `names`: the archive objects, if already listed (archive_objects)."""
    from tqdm import tqdm

    store = open_store(source) if isinstance(source, str) else source
    if names is None:
        names = archive_objects(store, since, until, max_lag)
    result = RedecodeResult()
    bar = tqdm(total=len(names), unit="obj", desc="redecode", disable=not progress)
    pending: list[codec.Frame] = []

    def flush(frames: list[codec.Frame]) -> None:
        try:
            wr = write_frames(conn, frames, maps, on_conflict="update" if update else "nothing")
        except DecodeError as exc:  # one bad frame: retry frame by frame to isolate it
            if len(frames) == 1:
                result.skip("registers_do_not_fit_map")
                event(log, f"skipped frame: {exc}", stage="store", level=logging.WARNING)
                return
            for f in frames:
                flush([f])
            return
        result.frames += wr.frames
        result.rows += sum(wr.rows.values())
        result.written += sum(wr.inserted.values())
        result.raised += len(wr.raised)

    try:
        for frame in frames_in_range(store, names, since, until, sites, maps, result, bar):
            pending.append(frame)
            if len(pending) >= batch:
                flush(pending)
                pending = []
        if pending:
            flush(pending)
    finally:
        bar.close()
    if update and result.frames:
        # rewritten rows keep their ledger rows (and commit times): the rollup job would not
        # see them, so their buckets are recomputed here (issue 23)
        rebuild(conn, list(maps.values()), since, until)
    event(log, f"redecoded {result.frames} frames from {result.objects} objects", stage="store",
          frames=result.frames, rows=result.rows, written=result.written, skipped=result.skipped,
          raised=result.raised)
    return result
