"""One object store: `gs://bucket/prefix` (Cloud Storage or its emulator) or a local directory.

Quarantine, the raw archive and the export all use it. Both kinds keep the same layout and offer
the same operations: `put` bytes, `upload` by streaming from a producer, `get`, `list`, `stat`
(generation, size, metadata), `set_metadata`, `move`, `delete`, and read or write small JSON
documents. Writes
take a generation precondition: `if_generation_match=0` means "only if absent", N means "only
over generation N"; a failed precondition raises `Conflict`. In a directory the generation is
the file's mtime in nanoseconds (checked just before the atomic rename), and custom metadata is
kept next to the file in `<name>.json` (unless the store is opened with `keep_metadata=False`).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ess.errors import PermanentError, TransientError

from . import gcs

OCTET = "application/octet-stream"
UPLOAD_CHUNK = 8 * 1024 * 1024  # resumable upload chunk (a multiple of 256 KiB): the buffer held
Produce = Callable[[BinaryIO], None]


class DestinationError(PermanentError):
    """The store's address is malformed, or its bucket or directory does not exist."""

    reason = "bad_destination"


class StoreError(TransientError):
    """An object could not be written to or read from a store."""

    reason = "store_error"


class Conflict(StoreError):
    """Another writer changed the object since it was read (generation precondition failed)."""

    reason = "conflict"


@dataclass(frozen=True)
class Stored:
    """An existing object: its generation, size, custom metadata and metageneration."""

    generation: int
    size: int
    metadata: dict[str, str] | None = None
    metageneration: int = 0


def _dumps(doc: dict) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


class GcsStore:
    """gs://BUCKET/PREFIX: every call with gcs.TIMEOUT and gcs.retry()."""

    def __init__(self, bucket: str, prefix: str = "", client=None) -> None:
        self.bucket_name, self.prefix = bucket, prefix.strip("/")
        self._client, self._bucket = client, None
        self.url = f"gs://{bucket}/{self.prefix}".rstrip("/")

    @property
    def client(self):
        if self._client is None:
            self._client = gcs.client()
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

    @staticmethod
    def _stored(blob) -> Stored:
        return Stored(blob.generation, blob.size, dict(blob.metadata or {}), blob.metageneration)

    def check(self) -> None:
        """Fail if the bucket is missing (needs only storage.objects.list)."""
        from google.api_core import exceptions as gexc

        try:
            list(self.client.list_blobs(self.bucket_name, prefix=self.prefix, max_results=1,
                                        timeout=gcs.TIMEOUT, retry=gcs.retry()))
        except gexc.NotFound as exc:
            raise DestinationError(f"bucket {self.bucket_name!r} does not exist") from exc

    def stat(self, key: str) -> Stored | None:
        blob = self.bucket.get_blob(self.name(key), timeout=gcs.TIMEOUT, retry=gcs.retry())
        return None if blob is None else self._stored(blob)

    def get(self, key: str) -> bytes:
        return self.bucket.blob(self.name(key)).download_as_bytes(timeout=gcs.TIMEOUT,
                                                                  retry=gcs.retry())

    def list(self, prefix: str = "") -> list[str]:
        """Keys (relative to the store's prefix) starting with `prefix`, sorted."""
        root = self.name("")
        blobs = self.client.list_blobs(self.bucket_name, prefix=root + prefix,
                                       timeout=gcs.TIMEOUT, retry=gcs.retry())
        return sorted(b.name[len(root):] for b in blobs)

    def put(self, key: str, data: bytes, *, metadata: dict | None = None,
            content_type: str = OCTET, if_generation_match: int | None = None,
            deadline: float | None = None) -> Stored:
        """Write `data` as object `key` in one request (with its retries, ended by `deadline`,
        a time.monotonic() instant, when given)."""
        from google.api_core import exceptions as gexc

        left = gcs.RETRY_DEADLINE if deadline is None else deadline - time.monotonic()
        if left <= 0:
            raise StoreError(f"cannot write {key} to {self.url}: no time left")
        blob = self.bucket.blob(self.name(key))
        blob.metadata = metadata or None
        try:
            blob.upload_from_string(data, content_type=content_type,
                                    if_generation_match=if_generation_match,
                                    timeout=min(gcs.TIMEOUT, left), retry=gcs.retry(left))
        except gexc.PreconditionFailed as exc:
            raise Conflict(f"{self.uri(key)} changed (generation precondition)") from exc
        except Exception as exc:
            raise StoreError(f"cannot write {key} to {self.url}: {exc}") from exc
        return self._stored(blob)

    def upload(self, key: str, produce: Produce, *, metadata: dict[str, str] | None = None,
               if_generation_match: int | None = None, content_type: str = OCTET,
               chunk_size: int = UPLOAD_CHUNK) -> Stored:
        """Stream object `key` from `produce(file)` as a resumable upload.

        `chunk_size` (a multiple of 256 KiB) is the part held in memory and sent per request.
        """
        from google.api_core import exceptions as gexc

        blob = self.bucket.blob(self.name(key), chunk_size=chunk_size)
        blob.metadata = metadata
        try:
            with blob.open("wb", if_generation_match=if_generation_match,
                           content_type=content_type, ignore_flush=True,
                           timeout=gcs.TIMEOUT, retry=gcs.retry()) as out:
                produce(out)
        except gexc.PreconditionFailed as exc:
            raise Conflict(f"{self.url}/{key} changed during the export") from exc
        blob.reload(timeout=gcs.TIMEOUT, retry=gcs.retry())
        return self._stored(blob)

    def set_metadata(self, key: str, stored: Stored, metadata: dict[str, str]) -> Stored:
        """Replace the metadata on exactly that generation and metageneration, else Conflict."""
        from google.api_core import exceptions as gexc

        blob = self.bucket.blob(self.name(key))
        blob.metadata = metadata
        try:
            blob.patch(if_generation_match=stored.generation,
                       if_metageneration_match=stored.metageneration,
                       timeout=gcs.TIMEOUT, retry=gcs.retry())
        except (gexc.PreconditionFailed, gexc.NotFound) as exc:
            raise Conflict(f"{self.url}/{key} changed during the export") from exc
        return self._stored(blob)

    def move(self, key: str, new_key: str) -> Stored:
        """Copy `key` to `new_key` (only if absent, else Conflict), then delete `key`."""
        from google.api_core import exceptions as gexc

        blob = self.bucket.get_blob(self.name(key), timeout=gcs.TIMEOUT, retry=gcs.retry())
        if blob is None:
            raise StoreError(f"{self.uri(key)} does not exist")
        try:
            new = self.bucket.copy_blob(blob, self.bucket, self.name(new_key),
                                        if_generation_match=0, timeout=gcs.TIMEOUT,
                                        retry=gcs.retry())
        except gexc.PreconditionFailed as exc:
            raise Conflict(f"{self.uri(new_key)} exists already") from exc
        self.delete(key, blob.generation)
        return self._stored(new)

    def delete(self, key: str, if_generation_match: int | None = None) -> None:
        """Delete object `key` (of that generation, when given)."""
        from google.api_core import exceptions as gexc

        try:
            self.bucket.blob(self.name(key)).delete(if_generation_match=if_generation_match,
                                                    timeout=gcs.TIMEOUT, retry=gcs.retry())
        except gexc.PreconditionFailed as exc:
            raise Conflict(f"{self.uri(key)} changed") from exc

    def read_json(self, key: str) -> tuple[dict | None, int]:
        """The document and its generation ((None, 0) when absent)."""
        from google.api_core import exceptions as gexc

        blob = self.bucket.get_blob(self.name(key), timeout=gcs.TIMEOUT, retry=gcs.retry())
        if blob is None:
            return None, 0
        try:
            data = blob.download_as_bytes(if_generation_match=blob.generation,
                                          timeout=gcs.TIMEOUT, retry=gcs.retry())
        except gexc.PreconditionFailed as exc:
            raise Conflict(f"{self.url}/{key} changed while read") from exc
        return json.loads(data), blob.generation

    def write_json(self, key: str, doc: dict, if_generation_match: int) -> int:
        """Write the document under the precondition; return its new generation."""
        try:
            return self.put(key, _dumps(doc), content_type="application/json",
                            if_generation_match=if_generation_match).generation
        except Conflict as exc:
            raise Conflict(f"{self.url}/{key} changed during the export") from exc


class DirStore:
    """A local directory with the same layout; files are replaced atomically (temp + rename)."""

    def __init__(self, root: str | Path, keep_metadata: bool = True) -> None:
        self.root, self.keep_metadata = Path(root), keep_metadata
        self.url = str(self.root)

    def uri(self, key: str) -> str:
        return str(self.root / key)

    @staticmethod
    def _gen(path: Path) -> int:
        try:
            return path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def _meta_path(self, key: str) -> Path:
        return self.root / (key + ".json")

    def check(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise DestinationError(f"{self.root} is not a directory")

    def stat(self, key: str) -> Stored | None:
        path = self.root / key
        if not path.is_file():
            return None
        st = path.stat()
        return Stored(st.st_mtime_ns, st.st_size, self._metadata(key))

    def _metadata(self, key: str) -> dict | None:
        if not self.keep_metadata:
            return None
        meta = self._meta_path(key)
        return json.loads(meta.read_text()) if meta.exists() else {}

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix`, sorted (temporary and metadata files left out)."""
        base = self.root / prefix if prefix.endswith("/") else self.root
        if not base.exists():
            return []
        names = {p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file()
                 and not p.name.startswith(".tmp-")}
        return sorted(n for n in names if n.startswith(prefix) and not (
            self.keep_metadata and n.endswith(".json") and n[:-5] in names))

    def _replace(self, key: str, write: Produce, if_generation_match: int | None) -> Path:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
            if if_generation_match == 0:        # only if absent: link fails if it exists
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise Conflict(f"{path} exists already") from None
                Path(tmp).unlink()
            else:
                if if_generation_match is not None and self._gen(path) != if_generation_match:
                    raise Conflict(f"{path} changed during the export")
                os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def _write_metadata(self, key: str, metadata: dict | None) -> None:
        if self.keep_metadata and metadata:
            meta = self._meta_path(key)
            tmp = meta.with_name(".tmp-" + meta.name)
            tmp.write_text(json.dumps(metadata))
            os.replace(tmp, meta)

    def put(self, key: str, data: bytes, *, metadata: dict | None = None,
            content_type: str = OCTET, if_generation_match: int | None = None,
            deadline: float | None = None) -> Stored:
        """Write `data` as file `key` (and its metadata beside it); a local write has no
        `deadline`."""
        return self.upload(key, lambda out: out.write(data), metadata=metadata,
                           if_generation_match=if_generation_match, content_type=content_type)

    def upload(self, key: str, produce: Produce, *, metadata: dict[str, str] | None = None,
               if_generation_match: int | None = None, content_type: str = OCTET,
               chunk_size: int = UPLOAD_CHUNK) -> Stored:
        """Write file `key` from `produce(file)` through a temporary file (no chunks)."""
        try:
            path = self._replace(key, produce, if_generation_match)
        except OSError as exc:
            raise StoreError(f"cannot write {key} to {self.url}: {exc}") from exc
        self._write_metadata(key, metadata)
        st = path.stat()
        return Stored(st.st_mtime_ns, st.st_size, self._metadata(key))

    def set_metadata(self, key: str, stored: Stored, metadata: dict[str, str]) -> Stored:
        if not self.keep_metadata:
            return stored  # the export keeps it in its manifests
        self._write_metadata(key, metadata)
        return Stored(stored.generation, stored.size, dict(metadata), stored.metageneration)

    def move(self, key: str, new_key: str) -> Stored:
        """Rename `key` to `new_key` (only if absent, else Conflict); mtime and metadata kept."""
        dst = self.root / new_key
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self.root / key, dst)
        except FileExistsError:
            raise Conflict(f"{dst} exists already") from None
        self.delete(key)
        if self._meta_path(key).exists():
            os.replace(self._meta_path(key), self._meta_path(new_key))
        st = dst.stat()
        return Stored(st.st_mtime_ns, st.st_size, self._metadata(new_key))

    def delete(self, key: str, if_generation_match: int | None = None) -> None:
        """Delete file `key` (of that generation, when given)."""
        path = self.root / key
        if if_generation_match is not None and self._gen(path) != if_generation_match:
            raise Conflict(f"{path} changed")
        path.unlink(missing_ok=True)

    def read_json(self, key: str) -> tuple[dict | None, int]:
        path = self.root / key
        try:
            return json.loads(path.read_bytes()), self._gen(path)
        except FileNotFoundError:
            return None, 0

    def write_json(self, key: str, doc: dict, if_generation_match: int) -> int:
        return self.put(key, _dumps(doc), if_generation_match=if_generation_match).generation


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
