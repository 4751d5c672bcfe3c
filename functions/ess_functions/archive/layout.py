"""Raw archive objects: Pub/Sub messages as Avro records, in a Cloud Storage subscription's layout.

In production the `raw_archive` subscription (infra/pubsub.tf: `avro_config.write_metadata`,
`filename_prefix = "frames/"`, `filename_datetime_format = "YYYY-MM-DD/hh_mm_ssZ"`) writes them;
locally `ess_local.archiver` writes the same objects:

    frames/2024-05-01/12_00_00Z_<uuid>.avro   records: subscription_name, message_id,
                                              publish_time (timestamp-micros), attributes, data

`ess redecode --source` takes the root (the folder holding the day folders).
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache

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


@dataclass(frozen=True)
class Record:
    """One archived Pub/Sub message."""

    message_id: str
    publish_time: datetime
    attributes: dict
    data: bytes
    subscription_name: str = ""



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
