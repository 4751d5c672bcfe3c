"""Ingest: one Pub/Sub message of frames -> all its rows in one database, in one statement.

Error policy (docs/ingest.md): permanent errors (the message can never be stored as sent) are
logged, quarantined and acknowledged; anything else raises, so Pub/Sub redelivers the message.
Writes are idempotent (`ON CONFLICT DO NOTHING`), so redeliveries never duplicate a row.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ess import codec
from ess.db.connect import connect, connect_dsn, is_transient
from ess.db.writer import WriteResult
from ess.decode import DecodeError
from ess.logs import event, setup_logging
from ess.sites import SitesConfig, load_sites

from .group_commit import GroupWriter
from .quarantine import Quarantine

log = logging.getLogger("ess.ingest")


class PermanentError(Exception):
    """The message can never be stored as sent; it is quarantined and acknowledged."""

    reason = "permanent"


class UnknownSite(PermanentError):
    """A frame names a site that the sites configuration does not list."""

    reason = "unknown_site"


class UnknownMap(PermanentError):
    """A frame names a map id and version that no configured device uses."""

    reason = "unknown_map_version"


class BadPayload(PermanentError):
    """The push request carries no decodable Pub/Sub message."""

    reason = "bad_payload"


@dataclass(frozen=True)
class Message:
    """One Pub/Sub message as pushed to the function."""

    message_id: str
    data: bytes
    attributes: dict = field(default_factory=dict)
    publish_time: datetime | None = None


@dataclass
class Outcome:
    """What handling one message did."""

    message_id: str
    status: str                     # stored | quarantined
    frames: int = 0
    result: WriteResult | None = None
    reason: str = ""
    object: str = ""


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def message_from_cloud_event(cloud_event) -> Message:
    """The Pub/Sub message inside a `messagePublished` CloudEvent.

    Both shapes arrive as `data = {"message": {...}}`: Eventarc's, and functions-framework's
    conversion of a raw push request (event_conversion.marshal_background_event_data, which
    keeps data, attributes, messageId and publishTime and drops `subscription`).
    """
    data = cloud_event.data if isinstance(cloud_event.data, dict) else {}
    msg = data.get("message", data)
    message_id = str(msg.get("messageId") or msg.get("message_id") or cloud_event["id"])
    try:
        raw = base64.b64decode(msg.get("data") or "", validate=True)
    except (ValueError, TypeError) as exc:
        raise BadPayload(f"message data is not base64: {exc}") from exc
    return Message(message_id, raw, dict(msg.get("attributes") or {}),
                   _parse_time(msg.get("publishTime") or msg.get("publish_time")
                               or cloud_event.get("time")))


def check_frames(frames: list[codec.Frame], sites: SitesConfig) -> None:
    """Raise UnknownSite / UnknownMap unless every frame's site and map are configured."""
    known_sites = sites.site_ids
    maps = sites.maps()
    for f in frames:
        if f.site_id not in known_sites:
            raise UnknownSite(f"frame seq {f.seq}: site {f.site_id!r} is not configured")
        if (f.map_id, f.map_version) not in maps:
            raise UnknownMap(f"frame seq {f.seq}: map {f.map_id!r} v{f.map_version} is not "
                             f"configured (known: {sorted(maps)})")


def reason_of(exc: Exception) -> str:
    """Short reason code logged and stored with a quarantined message."""
    if isinstance(exc, codec.UnknownVersion):
        return "unknown_codec_version"
    if isinstance(exc, codec.FrameError):
        return "undecodable_frame"
    if isinstance(exc, DecodeError):
        return "registers_do_not_fit_map"
    return getattr(exc, "reason", type(exc).__name__)


def out_of_range_text(summary: list[dict], limit: int = 20) -> str:
    """`BMS1 12 soc x3 [101..120]; ...` (the seed logs block, address, value one by one);
    the `out_of_range` field of the same log line lists every register."""
    text = "; ".join(f"{s['block']} {s['address']} {s['column']} x{s['count']} "
                     f"[{s['min']:g}..{s['max']:g}]" for s in summary[:limit])
    return text + (f"; and {len(summary) - limit} more" if len(summary) > limit else "")


class Connections:
    """Idle database connections reused across requests; a failed one is discarded."""

    def __init__(self, factory: Callable[[], object]):
        self.factory = factory
        self._idle: list = []
        self._lock = threading.Lock()

    def take(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self.factory()

    def give(self, conn) -> None:
        with self._lock:
            self._idle.append(conn)

    @staticmethod
    def discard(conn) -> None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - it is broken already
            pass


def default_factory() -> Callable[[], object]:
    """Connect with ESS_DB_DSN (optionally without TCP_NODELAY), else ESS_DB_INSTANCE."""
    # e.g. ESS_DB_DSN=postgresql://ess@127.0.0.1:55432/ess
    dsn = os.environ.get("ESS_DB_DSN")
    # e.g. ESS_DB_NODELAY=0 (benchmark only: leave Nagle's algorithm on)
    no_delay = os.environ.get("ESS_DB_NODELAY", "1") != "0"
    if dsn:
        return lambda: connect_dsn(dsn, no_delay=no_delay)
    return connect


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
        except (codec.FrameError, PermanentError) as exc:
            return self._poison(message, exc, ids)
        ids["site"] = frames[0].site_id
        if log.isEnabledFor(logging.DEBUG):   # the store line below carries these counts
            event(log, f"decoded {len(frames)} frames", stage="preprocess", level=logging.DEBUG,
                  frames=len(frames), bytes=len(message.data), **ids)
        try:
            result = self._store(frames, ids)
        except DecodeError as exc:  # registers do not fit the frame's map: never storable
            return self._poison(message, exc, ids)
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
        return Outcome(message.message_id, "stored", len(frames), result)

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

    def _poison(self, message: Message, exc: Exception, ids: dict) -> Outcome:
        reason = reason_of(exc)
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
                setup_logging("ingest")
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
        return ing._poison(message, exc, {"message_id": message.message_id, "sink": ing.sink})
    return ing.handle(message)
