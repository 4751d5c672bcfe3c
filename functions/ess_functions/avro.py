"""Raw archive: Pub/Sub messages as Avro objects, in the layout of a Cloud Storage subscription.

In production the `raw_archive` subscription (infra/pubsub.tf: `avro_config.write_metadata`,
`filename_prefix = "frames/"`, `filename_datetime_format = "YYYY-MM-DD/hh_mm_ssZ"`) writes them.
Locally `Archiver` pulls an `ess-archive` pull subscription and writes the same objects, acking
each message only after its object is stored:

    frames/2024-05-01/12_00_00Z_<uuid>.avro   records: subscription_name, message_id,
                                              publish_time (timestamp-micros), attributes, data

Run it with `python -m ess_functions.archive --subscription S --dest gs://BUCKET/frames/|DIR`;
`ess redecode --source` takes the same root (the folder holding the day folders).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

from ess.logs import event, setup_logging

log = logging.getLogger("ess.archive")

SUFFIX = ".avro"
SCHEMA = {
    "type": "record", "name": "PubsubMessage", "namespace": "google.pubsub.v1",
    "fields": [
        {"name": "subscription_name", "type": "string"},
        {"name": "message_id", "type": "string"},
        {"name": "publish_time", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "attributes", "type": {"type": "map", "values": "string"}},
        {"name": "data", "type": "bytes"},
    ],
}
_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})/")


class StoreError(RuntimeError):
    """An object could not be written to or read from the archive or quarantine store."""


@dataclass(frozen=True)
class Record:
    """One archived Pub/Sub message."""

    message_id: str
    publish_time: datetime
    attributes: dict
    data: bytes
    subscription_name: str = ""


# ---- stores: gs://BUCKET[/PREFIX] or a local directory -------------------------------------
class Store:
    """Objects under a root: `gs://bucket/prefix` (GCS, or its emulator) or a local directory."""

    def __init__(self, uri: str):
        self.uri = uri
        if uri.startswith("gs://"):
            self.bucket_name, _, prefix = uri[5:].partition("/")
            self.root = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
            self.dir: Path | None = None
            self._bucket = None
        else:
            self.dir = Path(uri.removeprefix("file://"))
            self.root = ""

    @property
    def bucket(self):
        if self._bucket is None:
            from google.cloud import storage

            self._bucket = storage.Client().bucket(self.bucket_name)
        return self._bucket

    def put(self, name: str, data: bytes, metadata: dict | None = None,
            content_type: str = "application/octet-stream") -> str:
        """Write object `name` (relative to the root); return its URI."""
        try:
            if self.dir is not None:
                path = self.dir / name
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_bytes(data)
                if metadata:
                    import json

                    path.with_name(path.name + ".json").write_text(json.dumps(metadata))
                os.replace(tmp, path)
                return str(path)
            blob = self.bucket.blob(self.root + name)
            blob.metadata = metadata or None
            blob.upload_from_string(data, content_type=content_type)
            return f"gs://{self.bucket_name}/{self.root}{name}"
        except Exception as exc:
            raise StoreError(f"cannot write {name} to {self.uri}: {exc}") from exc

    def list(self, prefix: str = "") -> list[str]:
        """Names (relative to the root) starting with `prefix`, sorted."""
        if self.dir is not None:
            base = self.dir / prefix if prefix.endswith("/") else self.dir
            if not base.exists():
                return []
            names = (str(p.relative_to(self.dir)) for p in base.rglob("*") if p.is_file())
            return sorted(n for n in names if n.startswith(prefix)
                          and not n.endswith((".tmp", ".json")))
        blobs = self.bucket.client.list_blobs(self.bucket_name, prefix=self.root + prefix)
        return sorted(b.name[len(self.root):] for b in blobs)

    def get(self, name: str) -> bytes:
        """Read object `name`."""
        if self.dir is not None:
            return (self.dir / name).read_bytes()
        return self.bucket.blob(self.root + name).download_as_bytes()

    def metadata(self, name: str) -> dict:
        """Custom metadata of object `name` ({} when none)."""
        if self.dir is not None:
            import json

            meta = self.dir / (name + ".json")
            return json.loads(meta.read_text()) if meta.exists() else {}
        blob = self.bucket.get_blob(self.root + name)
        return dict(blob.metadata or {}) if blob else {}


# ---- Avro objects ---------------------------------------------------------------------------
def object_name(when: datetime, prefix: str = "") -> str:
    """`YYYY-MM-DD/hh_mm_ssZ_<uuid>.avro` (under the store's root, e.g. `frames/`) for an
    object started at `when` (UTC)."""
    return f"{prefix}{when.astimezone(UTC):%Y-%m-%d/%H_%M_%S}Z_{uuid.uuid4().hex}{SUFFIX}"


def object_day(name: str) -> date | None:
    """The UTC day in an archive object's name."""
    m = _DAY.search(name)
    return date.fromisoformat(m.group(1)) if m else None


@cache
def _avro():
    import fastavro  # only the archiver and redecode need it, not the ingest function

    return fastavro, fastavro.parse_schema(SCHEMA)


def encode_records(records: list[Record]) -> bytes:
    """An Avro object container holding `records`."""
    fastavro, schema = _avro()
    out = io.BytesIO()
    fastavro.writer(out, schema, ({
        "subscription_name": r.subscription_name, "message_id": r.message_id,
        "publish_time": r.publish_time, "attributes": dict(r.attributes), "data": r.data,
    } for r in records), codec="deflate")
    return out.getvalue()


def decode_records(data: bytes) -> Iterator[Record]:
    """Records of an Avro object (written by us or by a Cloud Storage subscription)."""
    for rec in _avro()[0].reader(io.BytesIO(data)):
        yield Record(rec.get("message_id", ""), rec.get("publish_time"),
                     rec.get("attributes") or {}, rec["data"], rec.get("subscription_name", ""))


# ---- the local archiver ---------------------------------------------------------------------
class Archiver:
    """Pulls a subscription and writes each batch as one Avro object, then acks the batch."""

    def __init__(self, subscription: str, dest: str, *, subscriber=None,
                 max_duration: float = 5.0, max_bytes: int = 10_000_000,
                 max_messages: int = 1000):
        from google.cloud import pubsub_v1

        self.subscription = subscription    # projects/P/subscriptions/S
        self.store = Store(dest)
        self.subscriber = subscriber or pubsub_v1.SubscriberClient()
        self.max_duration, self.max_bytes, self.max_messages = (max_duration, max_bytes,
                                                                max_messages)

    def _pull(self, timeout: float) -> list:
        from google.api_core import exceptions as gexc

        try:
            resp = self.subscriber.pull(request={"subscription": self.subscription,
                                                 "max_messages": self.max_messages},
                                        timeout=timeout)
        except (gexc.DeadlineExceeded, gexc.ServiceUnavailable):
            return []
        return list(resp.received_messages)

    def cycle(self, until_idle: bool = False) -> int:
        """Collect one batch (max_duration or max_bytes, or until a pull is empty when
        `until_idle`), write it, ack it; return how many messages were archived."""
        started, batch, size = time.monotonic(), [], 0
        while time.monotonic() - started < self.max_duration and size < self.max_bytes:
            got = self._pull(timeout=2.0)
            batch += got
            size += sum(len(m.message.data) for m in got)
            if not got and (until_idle or batch):
                break
        if not batch:
            return 0
        records = [Record(m.message.message_id, m.message.publish_time,
                          dict(m.message.attributes), m.message.data,
                          self.subscription) for m in batch]
        name = object_name(datetime.now(UTC))
        uri = self.store.put(name, encode_records(records), content_type="application/avro")
        self.subscriber.acknowledge(request={"subscription": self.subscription,
                                             "ack_ids": [m.ack_id for m in batch]})
        event(log, f"archived {len(batch)} messages to {uri}", stage="archive",
              messages=len(batch), bytes=size, object=uri)
        return len(batch)

    def drain(self) -> int:
        """Archive until the subscription is empty; return how many messages were archived."""
        total = 0
        while n := self.cycle(until_idle=True):
            total += n
        return total

    def run(self, stop: threading.Event) -> None:
        """Archive until `stop` is set."""
        while not stop.is_set():
            try:
                self.cycle()
            except StoreError as exc:  # unacked messages come back after their deadline
                event(log, str(exc), stage="archive", level=logging.ERROR, error=str(exc))
                stop.wait(5.0)


def main(argv: list[str] | None = None) -> int:
    """`python -m ess_functions.archive`: run the local archiver until interrupted."""
    p = argparse.ArgumentParser(prog="ess-archive", description=__doc__.splitlines()[0])
    p.add_argument("--subscription", required=True,
                   help="projects/P/subscriptions/ess-archive (a pull subscription)")
    p.add_argument("--dest", required=True, help="gs://BUCKET/PREFIX or a local directory")
    p.add_argument("--max-duration", type=float, default=5.0, help="seconds per object")
    args = p.parse_args(argv)
    setup_logging("archive")
    archiver = Archiver(args.subscription, args.dest, max_duration=args.max_duration)
    stop = threading.Event()
    try:
        archiver.run(stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
