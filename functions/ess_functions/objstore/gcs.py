"""Cloud Storage behind the object store: the process's one client, the time limits of every
call, and `GcsStore`, whose calls map every provider error through `base.provider_errors`."""

from __future__ import annotations

import json
import threading
import time

from .base import (
    OCTET,
    UPLOAD_CHUNK,
    Conflict,
    DestinationError,
    Produce,
    Producer,
    Stored,
    StoreError,
    dumps,
    provider_errors,
)

# Every GCS call gets an explicit timeout and a retry whose deadline stays below the shortest
# function timeout (ingest: 60 s), so a stalled call fails the request instead of outliving it.
TIMEOUT = 10.0         # s per HTTP request
RETRY_DEADLINE = 30.0  # s for all retries of one call

_lock = threading.Lock()
_client = None


def client():
    """One google-cloud-storage client per process, created on first use.

    It honours STORAGE_EMULATOR_HOST (the local stack's fake-gcs-server).
    """
    global _client
    with _lock:
        if _client is None:
            from google.cloud import storage

            _client = storage.Client()
        return _client


def retry(seconds: float = RETRY_DEADLINE):
    """The retry policy of every call: storage's default predicate, at most `seconds` (and
    RETRY_DEADLINE) overall."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(min(seconds, RETRY_DEADLINE))


def _provider():
    """The provider's precondition and not-found errors (imported on first use)."""
    from google.api_core import exceptions as gexc

    return gexc.PreconditionFailed, gexc.NotFound


class GcsStore:
    """gs://BUCKET/PREFIX: every call with TIMEOUT and retry(), its errors mapped by `_call`."""

    def __init__(self, bucket: str, prefix: str = "", client=None) -> None:
        self.bucket_name, self.prefix = bucket, prefix.strip("/")
        self._client, self._bucket = client, None
        self.url = f"gs://{bucket}/{self.prefix}".rstrip("/")

    @property
    def client(self):
        if self._client is None:
            self._client = client()
        return self._client

    @property
    def bucket(self):
        if self._bucket is None:
            self._bucket = self.client.bucket(self.bucket_name)
        return self._bucket

    def name(self, key: str) -> str:
        """The object name of `key` (the prefix joined in front)."""
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{self.name(key)}"

    def _call(self, action: str, key: str, *, conflict: str = "", missing: str = "",
              producer: Producer | None = None):
        """The one mapping of Cloud Storage's errors for an operation on `key` (base.py):
        a failed precondition is Conflict; NotFound is Conflict when `missing` says so."""
        precondition, not_found = _provider()
        where = self.uri(key)
        return provider_errors(action, where, changed=(precondition,), conflict=conflict,
                               missing=(not_found,), producer=producer,
                               on_missing=Conflict(missing) if missing else None)

    @staticmethod
    def _stored(blob) -> Stored:
        return Stored(blob.generation, blob.size, dict(blob.metadata or {}), blob.metageneration)

    def check(self) -> None:
        """Fail if the bucket is missing (needs only storage.objects.list)."""
        _, not_found = _provider()
        with provider_errors("list", self.url, missing=(not_found,),
                             on_missing=DestinationError(
                                 f"bucket {self.bucket_name!r} does not exist")):
            list(self.client.list_blobs(self.bucket_name, prefix=self.prefix, max_results=1,
                                        timeout=TIMEOUT, retry=retry()))

    def stat(self, key: str) -> Stored | None:
        with self._call("stat", key):
            blob = self.bucket.get_blob(self.name(key), timeout=TIMEOUT, retry=retry())
        return None if blob is None else self._stored(blob)

    def get(self, key: str) -> bytes:
        with self._call("read", key):
            return self.bucket.blob(self.name(key)).download_as_bytes(timeout=TIMEOUT,
                                                                      retry=retry())

    def list(self, prefix: str = "") -> list[str]:
        """Keys (relative to the store's prefix) starting with `prefix`, sorted."""
        root = self.name("")
        with self._call("list", prefix):
            blobs = list(self.client.list_blobs(self.bucket_name, prefix=root + prefix,
                                                timeout=TIMEOUT, retry=retry()))
        return sorted(b.name[len(root):] for b in blobs)

    def put(self, key: str, data: bytes, *, metadata: dict | None = None,
            content_type: str = OCTET, if_generation_match: int | None = None,
            deadline: float | None = None) -> Stored:
        """Write `data` as object `key` in one request (with its retries, ended by `deadline`,
        a time.monotonic() instant, when given)."""
        left = RETRY_DEADLINE if deadline is None else deadline - time.monotonic()
        if left <= 0:
            raise StoreError(f"cannot write {key} to {self.url}: no time left")
        blob = self.bucket.blob(self.name(key))
        blob.metadata = metadata or None
        with self._call("write", key):
            blob.upload_from_string(data, content_type=content_type,
                                    if_generation_match=if_generation_match,
                                    timeout=min(TIMEOUT, left), retry=retry(left))
        return self._stored(blob)

    def upload(self, key: str, produce: Produce, *, metadata: dict[str, str] | None = None,
               if_generation_match: int | None = None, content_type: str = OCTET,
               chunk_size: int = UPLOAD_CHUNK) -> Stored:
        """Stream object `key` from `produce(file)` as a resumable upload; the producer's own
        errors pass through.

        `chunk_size` (a multiple of 256 KiB) is the part held in memory and sent per request.
        """
        blob = self.bucket.blob(self.name(key), chunk_size=chunk_size)
        blob.metadata = metadata
        producer = Producer(produce)
        with self._call("write", key, producer=producer):
            with blob.open("wb", if_generation_match=if_generation_match,
                           content_type=content_type, ignore_flush=True,
                           timeout=TIMEOUT, retry=retry()) as out:
                producer(out)
            blob.reload(timeout=TIMEOUT, retry=retry())
        return self._stored(blob)

    def set_metadata(self, key: str, stored: Stored, metadata: dict[str, str]) -> Stored:
        """Replace the metadata on exactly that generation and metageneration, else Conflict."""
        blob = self.bucket.blob(self.name(key))
        blob.metadata = metadata
        with self._call("update", key, missing=f"{self.uri(key)} was deleted since it was read"):
            blob.patch(if_generation_match=stored.generation,
                       if_metageneration_match=stored.metageneration,
                       timeout=TIMEOUT, retry=retry())
        return self._stored(blob)

    def move(self, key: str, new_key: str) -> Stored:
        """Copy `key` to `new_key` (only if absent, else Conflict), then delete `key`."""
        with self._call("read", key):
            blob = self.bucket.get_blob(self.name(key), timeout=TIMEOUT, retry=retry())
        if blob is None:
            raise StoreError(f"{self.uri(key)} does not exist")
        with self._call("copy", new_key, conflict=f"{self.uri(new_key)} exists already"):
            new = self.bucket.copy_blob(blob, self.bucket, self.name(new_key),
                                        if_generation_match=0, timeout=TIMEOUT, retry=retry())
        self.delete(key, blob.generation)
        return self._stored(new)

    def delete(self, key: str, if_generation_match: int | None = None) -> None:
        """Delete object `key` (of that generation, when given)."""
        with self._call("delete", key):
            self.bucket.blob(self.name(key)).delete(if_generation_match=if_generation_match,
                                                    timeout=TIMEOUT, retry=retry())

    def read_json(self, key: str) -> tuple[dict | None, int]:
        """The document and its generation ((None, 0) when absent)."""
        with self._call("read", key, conflict=f"{self.uri(key)} changed while read"):
            blob = self.bucket.get_blob(self.name(key), timeout=TIMEOUT, retry=retry())
            if blob is None:
                return None, 0
            data = blob.download_as_bytes(if_generation_match=blob.generation,
                                          timeout=TIMEOUT, retry=retry())
        return json.loads(data), blob.generation

    def write_json(self, key: str, doc: dict, if_generation_match: int) -> int:
        """Write the document under the precondition; return its new generation."""
        return self.put(key, dumps(doc), content_type="application/json",
                        if_generation_match=if_generation_match).generation
