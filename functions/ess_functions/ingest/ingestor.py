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
from datetime import timedelta

from ess import codec
from ess.db.connect import is_transient
from ess.db.writer import WriteResult
from ess.decode import DecodeError
from ess.errors import PermanentError
from ess.events.notify import log_raised
from ess.frame_checks import DEFAULT_MAX_FRAMES, DEFAULT_POLL_WINDOW, EmptyMessage, FrameChecks
from ess.logs import event, setup_logging
from ess.sites import SitesConfig, load_sites

from ..trace import request_trace
from .envelope import (
    Message,
    body_id,
    first_published,
    message_from_cloud_event,
    message_from_push,
)
from .errors import BadPayload, MessageTooLarge
from .group_commit import GroupWriter
from .pool import Connections, default_factory
from .quarantine import Quarantine

log = logging.getLogger("ess.ingest")
DEFAULT_MAX_BYTES = 4 * 1024 * 1024   # message data; 2,000 frames of the default map are ~2.2 MB


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
                 quarantine: Quarantine, writers: int = 2, max_frames: int = DEFAULT_MAX_FRAMES,
                 max_bytes: int = DEFAULT_MAX_BYTES, poll_window=DEFAULT_POLL_WINDOW,
                 notify: bool | None = None):
        self.sites, self.sink = sites, sink
        # one sink logs the raised episodes (docs/events.md): by default the main one
        self.notify = sink == "main" if notify is None else notify
        self.maps = sites.maps()
        self.checks = FrameChecks(sites, self.maps, max_frames, poll_window)
        self.max_bytes = max_bytes
        # a push body is base64 (4/3) plus its JSON envelope
        self.max_push_bytes = max_bytes * 4 // 3 + 64 * 1024
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
        # e.g. ESS_MAX_FRAMES=2000 (frames per message; keep well above the collector's
        # max_frames, at most 1000): a larger message is quarantined as too_many_frames
        max_frames = int(os.environ.get("ESS_MAX_FRAMES", str(DEFAULT_MAX_FRAMES)))
        # e.g. ESS_MAX_MESSAGE_BYTES=4194304 (message data): larger is message_too_large
        max_bytes = int(os.environ.get("ESS_MAX_MESSAGE_BYTES", str(DEFAULT_MAX_BYTES)))
        # e.g. ESS_POLL_WINDOW_DAYS=7: a frame polled further from its message's publish time
        # is quarantined as poll_time_far_from_publish (a collector clock off)
        window = timedelta(days=float(os.environ.get("ESS_POLL_WINDOW_DAYS", "7")))
        # e.g. ESS_EVENT_LOG=on: this sink logs a stage=event line per raised episode (default:
        # on for the main sink, off for the replica, so an episode is announced once)
        notify = os.environ.get("ESS_EVENT_LOG")
        return cls(sites, sink, Connections(default_factory()), Quarantine.from_env(), writers,
                   max_frames, max_bytes, window, None if notify is None else notify == "on")

    def handle(self, message: Message) -> Outcome:
        """Store the message, or quarantine it when it is poison; raise on anything retryable."""
        ids = {"message_id": message.message_id, "sink": self.sink,
               "site": message.attributes.get("site_id")}
        try:
            if not message.data:
                raise EmptyMessage("the message has no data")
            if len(message.data) > self.max_bytes:
                raise MessageTooLarge(f"message data is {len(message.data)} bytes "
                                      f"(limit {self.max_bytes})")
            frames = codec.decode_frames(message.data)
            published = first_published(message)
            self.checks.check(frames, published)
        except PermanentError as exc:
            return self.poison(message, exc, ids)
        ids["site"] = frames[0].site_id
        if log.isEnabledFor(logging.DEBUG):   # the store line below carries these counts
            event(log, f"decoded {len(frames)} frames", stage="preprocess", level=logging.DEBUG,
                  frames=len(frames), bytes=len(message.data), **ids)
        try:
            result = self._store(frames, ids, published)
        except DecodeError as exc:  # registers do not fit the frame's map: never storable
            return self.poison(message, exc, ids)
        self._log_stored(message, frames, result, ids)
        if self.notify and result.raised:
            log_raised(log, result.raised, message_id=message.message_id, sink=self.sink)
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

    def _store(self, frames: list[codec.Frame], ids: dict, published=None) -> WriteResult:
        """Decode and write through the group writer (one statement for concurrent messages).

        Raises DecodeError when the registers do not fit the frame's map.
        """
        try:
            return self.group.write(frames, published)
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


def _bad_payload(ing: Ingestor, exc: BadPayload) -> Outcome:
    return ing.poison(exc.kept, exc, {"message_id": exc.kept.message_id, "sink": ing.sink})


def handle_push_body(body: bytes) -> Outcome:
    """Entry point logic of the `ingest` function for a raw Pub/Sub push request body."""
    ing = ingestor()
    if len(body) > ing.max_push_bytes:
        message = Message(body_id(body), body)
        exc = MessageTooLarge(f"push body is {len(body)} bytes (limit {ing.max_push_bytes})")
        return ing.poison(message, exc, {"message_id": message.message_id, "sink": ing.sink})
    try:
        message = message_from_push(body)
    except BadPayload as exc:
        return _bad_payload(ing, exc)
    return ing.handle(message)


def handle_cloud_event(cloud_event) -> Outcome:
    """Entry point logic of the `ingest` function for a CloudEvent (Eventarc)."""
    import flask

    ing = ingestor()
    body = (flask.request.get_data() if flask.has_request_context()
            else repr(cloud_event.data).encode())
    try:
        message = message_from_cloud_event(cloud_event, body)
    except BadPayload as exc:
        return _bad_payload(ing, exc)
    return ing.handle(message)
