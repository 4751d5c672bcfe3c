"""Quarantine: poison messages kept byte for byte, with the reason in the object's metadata.

Layout: `quarantine/<sink>/<yyyy-mm-dd (publish day, UTC)>/<message_id>.bin`. A redelivered
poison message overwrites its own object, so keeping it is idempotent.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from .archive import Store, StoreError


class QuarantineError(RuntimeError):
    """A poison message could not be preserved; the delivery must fail so it is retried."""


def object_name(sink: str, message_id: str, published: datetime | None) -> str:
    """`quarantine/<sink>/<yyyy-mm-dd>/<message_id>.bin`."""
    day = (published or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d")
    safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in message_id) or "unknown"
    return f"quarantine/{sink}/{day}/{safe_id}.bin"


class Quarantine:
    """Keeps poison messages in a bucket (`name` or `gs://name`) or a local directory."""

    def __init__(self, target: str | None):
        self.target = target
        self.store = None
        if target:
            is_dir = target.startswith(("/", "file://", "."))
            self.store = Store(target if is_dir or target.startswith("gs://")
                               else f"gs://{target}")

    @classmethod
    def from_env(cls) -> Quarantine:
        # e.g. ESS_QUARANTINE_BUCKET=my-project-ess-quarantine (or a local directory)
        return cls(os.environ.get("ESS_QUARANTINE_BUCKET"))

    def keep(self, message, sink: str, reason: str, detail: str) -> str:
        """Store the message's bytes with why it was refused; return the object's URI."""
        if self.store is None:
            raise QuarantineError("ESS_QUARANTINE_BUCKET is not set; cannot keep a poison message")
        meta = {"reason": reason, "detail": detail[:1000], "message_id": message.message_id,
                "sink": sink, "attributes": json.dumps(message.attributes, sort_keys=True),
                "publish_time": message.publish_time.isoformat() if message.publish_time else ""}
        try:
            return self.store.put(object_name(sink, message.message_id, message.publish_time),
                                  message.data, metadata=meta)
        except StoreError as exc:
            raise QuarantineError(str(exc)) from exc
