"""The Pub/Sub message inside a push request (a `messagePublished` CloudEvent)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime

from .errors import BadPayload


@dataclass(frozen=True)
class Message:
    """One Pub/Sub message as pushed to the function."""

    message_id: str
    data: bytes
    attributes: dict = field(default_factory=dict)
    publish_time: datetime | None = None


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
