"""Quarantine: poison messages kept byte for byte, with the reason in the object's metadata.

Layout: `quarantine/<sink>/<yyyy-mm-dd (publish day, UTC)>/<message_id>.bin`. The object is
created only if absent (`if_generation_match=0`): a redelivered poison message finds its object
already kept, which counts as success, so keeping it is idempotent.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from ..objstore import Conflict, ObjectStore, StoreError, open_store
from .errors import QuarantineError


def object_name(sink: str, message_id: str, published: datetime | None) -> str:
    """`quarantine/<sink>/<yyyy-mm-dd>/<message_id>.bin`."""
    day = (published or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d")
    safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in message_id) or "unknown"
    return f"quarantine/{sink}/{day}/{safe_id}.bin"


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
        meta = {"reason": reason, "detail": detail[:1000], "message_id": message.message_id,
                "sink": sink, "attributes": json.dumps(message.attributes, sort_keys=True),
                "publish_time": message.publish_time.isoformat() if message.publish_time else ""}
        name = object_name(sink, message.message_id, message.publish_time)
        try:
            self.store.put(name, message.data, metadata=meta, if_generation_match=0)
        except Conflict:
            pass  # kept already (a redelivery, or a retry of a write that did succeed)
        except StoreError as exc:
            raise QuarantineError(str(exc)) from exc
        return self.store.uri(name)
