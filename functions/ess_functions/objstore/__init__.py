"""One object store: `gs://bucket/prefix` (Cloud Storage or its emulator) or a local directory.

Quarantine, the raw archive and the export all use it. Both kinds keep the same layout and offer
the same operations: `put` bytes, `upload` by streaming from a producer, `get`, `list`, `stat`
(generation, size, metadata), `set_metadata`, `move`, `delete`, and read or write small JSON
documents. Writes take a generation precondition: `if_generation_match=0` means "only if
absent", N means "only over generation N"; a failed precondition raises `Conflict`. Every
provider error becomes a store error in one place (`base.provider_errors`): `Conflict`,
`DestinationError` (no such bucket or directory) or `StoreError`. Modules: base (errors, what an
object is, the mapping), gcs (Cloud Storage: client, time limits, `GcsStore`), local
(`DirStore`).
"""

from __future__ import annotations

from . import gcs
from .base import OCTET, UPLOAD_CHUNK, Conflict, DestinationError, Stored, StoreError
from .gcs import GcsStore
from .local import DirStore

__all__ = ["OCTET", "UPLOAD_CHUNK", "Conflict", "DestinationError", "DirStore", "GcsStore",
           "ObjectStore", "StoreError", "Stored", "gcs", "open_store"]

ObjectStore = GcsStore | DirStore


def open_store(spec: str, *, keep_metadata: bool = True, client=None) -> ObjectStore:
    """`gs://BUCKET[/PREFIX]` or a local directory (optionally `file://DIR`)."""
    if spec.startswith("gs://"):
        bucket, _, prefix = spec[5:].partition("/")
        if not bucket:
            raise DestinationError(f"no bucket in {spec!r}")
        return GcsStore(bucket, prefix, client=client)
    if spec.startswith("file://"):
        spec = spec.removeprefix("file://")
    elif "://" in spec:
        raise DestinationError(f"unsupported destination {spec!r}: use gs://BUCKET/PREFIX or a "
                               "directory")
    return DirStore(spec, keep_metadata=keep_metadata)
