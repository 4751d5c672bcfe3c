"""The Pub/Sub message inside a push request: a raw push body, or a `messagePublished` CloudEvent.

A request that holds no valid message raises BadPayload carrying `kept`: the Message to
quarantine, whose data is the raw request body byte for byte, with the attributes (when they are
an object of strings), the message id (else a hash of the body) and the publish time (else now).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ess.replay import FIRST_PUBLISH

from .errors import BadPayload


@dataclass(frozen=True)
class Message:
    """One Pub/Sub message as pushed to the function."""

    message_id: str
    data: bytes
    attributes: dict = field(default_factory=dict)
    publish_time: datetime | None = None


def _parse_time(text: object) -> datetime | None:
    """An ISO 8601 time, or None (missing) if unparsable or outside what UTC can represent."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        parsed.astimezone(UTC)   # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
    except (ValueError, OverflowError):
        return None
    return parsed


def first_published(message: Message) -> datetime | None:
    """When the message was first published: its `ess_first_publish_time` attribute (a message
    `ess replay-dead-letters` sent back after an outage), else its own publish time."""
    return _parse_time(message.attributes.get(FIRST_PUBLISH)) or message.publish_time


def body_id(body: bytes) -> str:
    """A message id for a body that names none: `body-<sha256 prefix>` (stable on redelivery)."""
    return "body-" + hashlib.sha256(body).hexdigest()[:32]


def kept_message(body: bytes, msg: object, fallback_id: str | None = None) -> Message:
    """What is quarantined for a bad request: the raw body, and whatever fields are usable."""
    msg = msg if isinstance(msg, dict) else {}
    mid = msg.get("messageId", msg.get("message_id", fallback_id))
    attrs = msg.get("attributes")
    good_attrs = isinstance(attrs, dict) and all(isinstance(v, str) for v in attrs.values())
    return Message(mid if isinstance(mid, str) and mid else body_id(body), body,
                   dict(attrs) if good_attrs else {},
                   _parse_time(msg.get("publishTime", msg.get("publish_time")))
                   or datetime.now(UTC))


def _fail(body: bytes, msg: object, why: str, fallback_id: str | None = None) -> BadPayload:
    exc = BadPayload(why)
    exc.kept = kept_message(body, msg, fallback_id)
    return exc


def message_from_fields(msg: object, body: bytes, fallback_id: str | None = None,
                        fallback_time: object = None) -> Message:
    """The Message of a push body's `message` object; BadPayload (with `kept`) if it is not one."""
    if not isinstance(msg, dict):
        raise _fail(body, msg, f"message is a {type(msg).__name__}, not an object")
    mid = msg.get("messageId", msg.get("message_id", fallback_id))
    attrs = msg.get("attributes") or {}
    published = msg.get("publishTime", msg.get("publish_time", fallback_time))
    data = msg.get("data")
    problem = (
        "message has no messageId" if not isinstance(mid, str) or not mid else
        "attributes is not an object of strings" if not isinstance(attrs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in attrs.items()) else
        "publishTime is not a string" if published is not None and not isinstance(published, str)
        else "message has no data" if data is None else
        "message data is not a string" if not isinstance(data, str) else "")
    if problem:
        raise _fail(body, msg, problem, fallback_id)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _fail(body, msg, f"message data is not base64: {exc}", fallback_id) from exc
    return Message(mid, raw, dict(attrs), _parse_time(published))


def message_from_push(body: bytes) -> Message:
    """The message of a raw Pub/Sub push body (`{"message": {...}, "subscription": ...}`)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(body, None, f"push body is not JSON: {exc}") from exc
    except RecursionError:      # thousands of nested arrays or objects
        raise _fail(body, None, "push body is JSON nested too deeply to read") from None
    if not isinstance(doc, dict):
        raise _fail(body, None, f"push body is a JSON {type(doc).__name__}, not an object")
    if "message" not in doc:
        raise _fail(body, None, "push body has no message")
    return message_from_fields(doc["message"], body)


def message_from_cloud_event(cloud_event, body: bytes) -> Message:
    """The Pub/Sub message inside a `messagePublished` CloudEvent (`data = {"message": {...}}`).

    `body` is the raw request body, kept when the event holds no valid message.
    """
    data = cloud_event.data
    if not isinstance(data, dict) or "message" not in data:
        raise _fail(body, None, "CloudEvent data is not an object with a message",
                    str(cloud_event["id"]))
    return message_from_fields(data["message"], body, str(cloud_event["id"]),
                               cloud_event.get("time"))
