"""Quarantine: poison messages kept byte for byte, with the reason in the object's metadata.

Layout: `quarantine/<sink>/<yyyy-mm-dd (publish day, UTC)>/<message_id>.bin`. The object is
created only if absent (`if_generation_match=0`): a redelivered poison message finds its object
already kept, which counts as success, so keeping it is idempotent.

Cloud Storage limits (which fake-gcs-server does not enforce): an object name is at most 1,024
bytes (a message id longer than ID_MAX becomes its safe head plus a hash), and custom metadata at
most 8 KiB in all. Metadata values are bounded; when the message id or the attributes do not
fit, the whole record (id, attributes, detail) goes to a sidecar `<object>.meta.json`, named by
the `sidecar` metadata field. One deadline (KEEP_DEADLINE) covers both writes and their retries.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime

from ..objstore import Conflict, ObjectStore, StoreError, gcs, open_store
from .errors import QuarantineError

ID_MAX = 128           # characters of a message id kept in the object name
DETAIL_MAX = 1024      # bytes of the detail in metadata
ID_META_MAX = 512      # bytes of the message id in metadata
ATTRS_META_MAX = 4096  # bytes of the attributes' JSON in metadata
METADATA_MAX = 8192    # Cloud Storage's limit on all custom metadata (keys and values)
# s for all of keep() (sidecar and object, retries included): one call's retry deadline, so a
# poison message fails well within the ingest function's 60 s timeout, however many puts.
KEEP_DEADLINE = gcs.RETRY_DEADLINE


def object_name(sink: str, message_id: str, published: datetime | None) -> str:
    """`quarantine/<sink>/<yyyy-mm-dd>/<message_id>.bin` (a long id hashed)."""
    day = (published or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d")
    safe_id = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_"
                      for c in message_id) or "unknown"
    if len(safe_id) > ID_MAX:
        digest = hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        safe_id = f"{safe_id[:ID_MAX - 33]}-{digest}"
    return f"quarantine/{sink}/{day}/{safe_id}.bin"


def _clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes (on a character boundary)."""
    data = text.encode("utf-8", "replace")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def metadata_size(meta: dict[str, str]) -> int:
    """Bytes of custom metadata as Cloud Storage counts them (keys and values, UTF-8)."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())


def record(message, sink: str, reason: str, detail: str) -> tuple[dict[str, str], dict | None]:
    """The object's metadata, and the sidecar document when the record does not fit in it."""
    attrs = json.dumps(message.attributes, sort_keys=True)
    mid = message.message_id.encode("utf-8", "replace").decode()
    published = message.publish_time.isoformat() if message.publish_time else ""
    meta = {"reason": reason, "detail": _clip(detail, DETAIL_MAX), "sink": sink,
            "message_id": mid, "attributes": attrs, "publish_time": published}
    if (len(mid.encode()) <= ID_META_MAX
            and len(attrs.encode()) <= ATTRS_META_MAX):
        return meta, None
    sidecar = {"reason": reason, "detail": detail, "sink": sink,
               "message_id": mid, "attributes": message.attributes,
               "publish_time": published}
    meta.update(message_id=_clip(mid, ID_META_MAX), attributes="",
                truncated="message_id and attributes in full in the sidecar")
    return meta, sidecar


class Quarantine:
    """Keeps poison messages in a bucket (`name` or `gs://name`) or a local directory."""

    def __init__(self, target: str | None):
        self.target = target
        self.store: ObjectStore | None = None
        if target:
            is_dir = target.startswith(("/", "file://", "."))
            self.store = open_store(target if is_dir or target.startswith("gs://")
                                    else f"gs://{target}")

    @classmethod
    def from_env(cls) -> Quarantine:
        # e.g. ESS_QUARANTINE_BUCKET=my-project-ess-quarantine (or a local directory)
        return cls(os.environ.get("ESS_QUARANTINE_BUCKET"))

    def keep(self, message, sink: str, reason: str, detail: str) -> str:
        """Store the message's bytes with why it was refused; return the object's URI."""
        if self.store is None:
            raise QuarantineError("ESS_QUARANTINE_BUCKET is not set; cannot keep a poison message")
        meta, sidecar = record(message, sink, reason, detail)
        name = object_name(sink, message.message_id, message.publish_time)
        deadline = time.monotonic() + KEEP_DEADLINE
        try:
            if sidecar is not None:
                meta["sidecar"] = name + ".meta.json"
                self._put(meta["sidecar"], (json.dumps(sidecar, sort_keys=True, indent=1)
                                            + "\n").encode(), None, "application/json", deadline)
            self._put(name, message.data, meta, "application/octet-stream", deadline)
        except StoreError as exc:
            raise QuarantineError(str(exc)) from exc
        return self.store.uri(name)

    def _put(self, name: str, data: bytes, meta: dict | None, content_type: str,
             deadline: float) -> None:
        try:
            self.store.put(name, data, metadata=meta, content_type=content_type,
                           if_generation_match=0, deadline=deadline)
        except Conflict:
            pass  # kept already (a redelivery, or a retry of a write that did succeed)
