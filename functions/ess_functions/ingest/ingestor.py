"""Ingest: one Pub/Sub message of frames -> all its rows in one database, in one statement.

Error policy (docs/ingest.md): permanent errors (the message can never be stored as sent) are
logged, quarantined and acknowledged; anything else raises, so Pub/Sub redelivers the message.
Writes are idempotent (`ON CONFLICT DO NOTHING`), so redeliveries never duplicate a row.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from ess import codec
from ess.db.connect import is_transient
from ess.db.writer import WriteResult
from ess.decode import DecodeError
from ess.errors import PermanentError
from ess.logs import event, setup_logging
from ess.sites import SitesConfig, load_sites

from ..group_commit import GroupWriter
from ..trace import request_trace
from .checks import check_frames
from .envelope import Message, message_from_cloud_event
from .errors import BadPayload
from .pool import Connections, default_factory
from .quarantine import Quarantine

log = logging.getLogger("ess.ingest")


@dataclass
class Outcome:
    """What handling one message did."""

    message_id: str
    status: str                     # stored | quarantined
    frames: int = 0
    result: WriteResult | None = None
    reason: str = ""
    object: str = ""


def out_of_range_text(summary: list[dict], limit: int = 20) -> str:
    """`BMS1 12 soc x3 [101..120]; ...` (the original 2021 design logged block, address and
    value one by one); the `out_of_range` field of the same log line lists every register."""
    text = "; ".join(f"{s['block']} {s['address']} {s['column']} x{s['count']} "
                     f"[{s['min']:g}..{s['max']:g}]" for s in summary[:limit])
    return text + (f"; and {len(summary) - limit} more" if len(summary) > limit else "")


class Ingestor:
    """Stores messages for one sink; thread-safe (functions-framework serves with threads)."""

    def __init__(self, sites: SitesConfig, sink: str, connections: Connections,
                 quarantine: Quarantine, writers: int = 2):
        self.sites, self.sink = sites, sink
        self.maps = sites.maps()
        self.connections, self.quarantine = connections, quarantine
        self.group = GroupWriter(connections.take, connections.give, connections.discard,
                                 self.maps, max_writers=writers)

    @classmethod
    def from_env(cls) -> Ingestor:
        # e.g. ESS_SITES_CONFIG=/etc/ess/sites.yaml or gs://my-project-ess-config/sites.yaml
        sites = load_sites(os.environ["ESS_SITES_CONFIG"])
        # e.g. ESS_SINK=main (or replica)
        sink = os.environ.get("ESS_SINK", "main")
        # e.g. ESS_GROUP_WRITERS=2 (statements in flight at once per instance; the second
        # starts only when a backlog waits, overlapping one group's database round trip with
        # the next group's decoding)
        writers = int(os.environ.get("ESS_GROUP_WRITERS", "2"))
        return cls(sites, sink, Connections(default_factory()), Quarantine.from_env(), writers)

    def handle(self, message: Message) -> Outcome:
        """Store the message, or quarantine it when it is poison; raise on anything retryable."""
        ids = {"message_id": message.message_id, "sink": self.sink,
               "site": message.attributes.get("site_id")}
        try:
            frames = codec.decode_frames(message.data)
            check_frames(frames, self.sites)
        except PermanentError as exc:
            return self.poison(message, exc, ids)
        ids["site"] = frames[0].site_id
        if log.isEnabledFor(logging.DEBUG):   # the store line below carries these counts
            event(log, f"decoded {len(frames)} frames", stage="preprocess", level=logging.DEBUG,
                  frames=len(frames), bytes=len(message.data), **ids)
        try:
            result = self._store(frames, ids)
        except DecodeError as exc:  # registers do not fit the frame's map: never storable
            return self.poison(message, exc, ids)
        self._log_stored(message, frames, result, ids)
        return Outcome(message.message_id, "stored", len(frames), result)

    @staticmethod
    def _log_stored(message: Message, frames: list[codec.Frame], result: WriteResult,
                    ids: dict) -> None:
        committed_us = time.time_ns() // 1000
        lat = sorted((committed_us - f.poll_start_us) / 1000 for f in frames)
        if result.out_of_range:
            event(log, f"out-of-range values: {out_of_range_text(result.out_of_range)}",
                  stage="preprocess", level=logging.WARNING, frames=len(frames),
                  out_of_range=sum(r["count"] for r in result.out_of_range),
                  registers=result.out_of_range, **ids)
        rows, inserted = sum(result.rows.values()), sum(result.inserted.values())
        event(log, f"stored {inserted}/{rows} rows of {len(frames)} frames", stage="store",
              frames=len(frames), bytes=len(message.data), rows=rows, inserted=inserted,
              duplicates=result.duplicates,
              latency_ms={"p50": round(lat[len(lat) // 2], 1), "max": round(lat[-1], 1)},
              lag_s=round(lat[-1] / 1000, 3), **ids)

    def _store(self, frames: list[codec.Frame], ids: dict) -> WriteResult:
        """Decode and write through the group writer (one statement for concurrent messages).

        Raises DecodeError when the registers do not fit the frame's map.
        """
        try:
            return self.group.write(frames)
        except DecodeError:
            raise
        except Exception as exc:
            transient = is_transient(exc)
            event(log, f"store failed ({'transient' if transient else 'error'}): {exc}",
                  stage="store", level=logging.WARNING if transient else logging.ERROR,
                  frames=len(frames), transient=transient,
                  error=f"{type(exc).__name__}: {exc}", **ids)
            raise

    def poison(self, message: Message, exc: PermanentError, ids: dict) -> Outcome:
        """Quarantine a message that can never be stored, log why, and acknowledge it."""
        reason = exc.reason
        try:
            uri = self.quarantine.keep(message, self.sink, reason, str(exc))
        except Exception as qexc:
            event(log, f"cannot quarantine message {message.message_id} ({reason}): {qexc}; "
                  "it will be retried", stage="preprocess", level=logging.ERROR, reason=reason,
                  error=str(qexc), transient=True, **ids)
            raise
        event(log, f"quarantined message {message.message_id}: {reason}: {exc}",
              stage="preprocess", level=logging.ERROR, reason=reason, error=str(exc),
              quarantine=uri, bytes=len(message.data), **ids)
        return Outcome(message.message_id, "quarantined", reason=reason, object=uri)


_ingestor: Ingestor | None = None
_init_lock = threading.Lock()


def ingestor() -> Ingestor:
    """The process's Ingestor, built from the environment on first use."""
    global _ingestor
    if _ingestor is None:
        with _init_lock:
            if _ingestor is None:
                setup_logging("ingest", trace=request_trace)
                _ingestor = Ingestor.from_env()
    return _ingestor


def warm() -> None:
    """Start-up work, done before the first request: configuration, maps, compiled decoders.

    Database connections stay lazy. Without this, the first messages wait ~2 s behind it.
    """
    from ess.decode import decoder_for

    for regmap in ingestor().maps.values():
        decoder_for(regmap)


def handle_cloud_event(cloud_event) -> Outcome:
    """Entry point logic of the `ingest` function."""
    ing = ingestor()
    try:
        message = message_from_cloud_event(cloud_event)
    except BadPayload as exc:
        message = Message(str(cloud_event["id"]), repr(cloud_event.data).encode(),
                          publish_time=datetime.now(UTC))
        return ing.poison(message, exc, {"message_id": message.message_id, "sink": ing.sink})
    return ing.handle(message)
