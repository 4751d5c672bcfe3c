"""Where export files go: a Cloud Storage bucket (and prefix) or a local directory.

Both keep the same layout and offer the same operations: `stat` an object (its generation, size
and metadata), `upload` it by streaming with a generation precondition, and read or write small
JSON documents (the manifests) with the same precondition.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

UPLOAD_CHUNK = 8 * 1024 * 1024  # resumable upload chunk (a multiple of 256 KiB): the buffer held


class DestinationError(ValueError):
    """The destination is malformed or does not exist."""


class Conflict(RuntimeError):
    """Another writer changed the object since it was read (generation precondition failed)."""


@dataclass(frozen=True)
class Stored:
    """An existing object: its generation, size, custom metadata and metageneration."""

    generation: int
    size: int
    metadata: dict[str, str] | None = None
    metageneration: int = 0


class Destination(Protocol):
    """Storage for export files."""

    url: str

    def check(self) -> None: ...
    def stat(self, key: str) -> Stored | None: ...
    def upload(self, key: str, produce: Callable[[BinaryIO], None], metadata: dict[str, str],
               if_generation: int, content_type: str) -> Stored: ...
    def set_metadata(self, key: str, stored: Stored, metadata: dict[str, str]) -> Stored: ...
    def read_json(self, key: str) -> tuple[dict | None, int]: ...
    def write_json(self, key: str, doc: dict, if_generation: int) -> int: ...


def _join(prefix: str, key: str) -> str:
    return f"{prefix.strip('/')}/{key}" if prefix.strip("/") else key


class GcsDestination:
    """gs://BUCKET/PREFIX: resumable streaming uploads with `if_generation_match`."""

    def __init__(self, client, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket_name, self.prefix = client, bucket, prefix.strip("/")
        self.bucket = client.bucket(bucket)
        self.url = f"gs://{bucket}/{self.prefix}".rstrip("/")

    def check(self) -> None:
        """Fail if the bucket is missing (needs only storage.objects.list)."""
        from google.api_core import exceptions as gexc

        try:
            list(self.client.list_blobs(self.bucket_name, prefix=self.prefix, max_results=1))
        except gexc.NotFound as exc:
            raise DestinationError(f"bucket {self.bucket_name!r} does not exist") from exc

    def stat(self, key: str) -> Stored | None:
        blob = self.bucket.get_blob(_join(self.prefix, key))
        if blob is None:
            return None
        return Stored(blob.generation, blob.size, dict(blob.metadata or {}), blob.metageneration)

    def upload(self, key, produce, metadata, if_generation, content_type) -> Stored:
        from google.api_core import exceptions as gexc

        blob = self.bucket.blob(_join(self.prefix, key), chunk_size=UPLOAD_CHUNK)
        blob.metadata = metadata
        try:
            with blob.open("wb", if_generation_match=if_generation, content_type=content_type,
                           ignore_flush=True) as out:
                produce(out)
        except gexc.PreconditionFailed as exc:
            raise Conflict(f"{self.url}/{key} changed during the export") from exc
        blob.reload()
        return Stored(blob.generation, blob.size, dict(blob.metadata or {}), blob.metageneration)

    def set_metadata(self, key: str, stored: Stored, metadata: dict[str, str]) -> Stored:
        """Replace our metadata on exactly that generation and metageneration, else Conflict."""
        from google.api_core import exceptions as gexc

        blob = self.bucket.blob(_join(self.prefix, key))
        blob.metadata = metadata
        try:
            blob.patch(if_generation_match=stored.generation,
                       if_metageneration_match=stored.metageneration)
        except (gexc.PreconditionFailed, gexc.NotFound) as exc:
            raise Conflict(f"{self.url}/{key} changed during the export") from exc
        return Stored(blob.generation, blob.size, dict(blob.metadata or {}), blob.metageneration)

    def read_json(self, key: str) -> tuple[dict | None, int]:
        blob = self.bucket.get_blob(_join(self.prefix, key))
        if blob is None:
            return None, 0
        from google.api_core import exceptions as gexc

        try:
            data = blob.download_as_bytes(if_generation_match=blob.generation)
        except gexc.PreconditionFailed as exc:
            raise Conflict(f"{self.url}/{key} changed while read") from exc
        return json.loads(data), blob.generation

    def write_json(self, key: str, doc: dict, if_generation: int) -> int:
        from google.api_core import exceptions as gexc

        blob = self.bucket.blob(_join(self.prefix, key))
        try:
            blob.upload_from_string(json.dumps(doc, indent=1, sort_keys=True) + "\n",
                                    content_type="application/json",
                                    if_generation_match=if_generation)
        except gexc.PreconditionFailed as exc:
            raise Conflict(f"{self.url}/{key} changed during the export") from exc
        return blob.generation


class LocalDestination:
    """A directory with the same layout. Files are replaced atomically (temp file + rename);
    the generation is the file's mtime in nanoseconds, checked just before the rename.
    Metadata lives in the manifests only."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def check(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise DestinationError(f"{self.root} is not a directory")

    def _gen(self, path: Path) -> int:
        try:
            return path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def stat(self, key: str) -> Stored | None:
        p = self.root / key
        return Stored(p.stat().st_mtime_ns, p.stat().st_size) if p.is_file() else None

    def _replace(self, key: str, write: Callable[[BinaryIO], None], if_generation: int) -> Stored:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
            if self._gen(path) != if_generation:
                raise Conflict(f"{path} changed during the export")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        st = path.stat()
        return Stored(st.st_mtime_ns, st.st_size)

    def upload(self, key, produce, metadata, if_generation, content_type) -> Stored:
        return self._replace(key, produce, if_generation)

    def set_metadata(self, key: str, stored: Stored, metadata: dict[str, str]) -> Stored:
        return stored  # kept in the manifest

    def read_json(self, key: str) -> tuple[dict | None, int]:
        path = self.root / key
        try:
            return json.loads(path.read_bytes()), self._gen(path)
        except FileNotFoundError:
            return None, 0

    def write_json(self, key: str, doc: dict, if_generation: int) -> int:
        data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
        return self._replace(key, lambda out: out.write(data), if_generation).generation


def parse_destination(spec: str, client_factory: Callable[[], object] | None = None) -> Destination:
    """`gs://BUCKET[/PREFIX]` or a local directory path."""
    if spec.startswith("gs://"):
        bucket, _, prefix = spec[5:].partition("/")
        if not bucket:
            raise DestinationError(f"no bucket in {spec!r}")
        if client_factory is None:
            from google.cloud import storage

            client_factory = storage.Client
        return GcsDestination(client_factory(), bucket, prefix)
    if "://" in spec:
        raise DestinationError(f"unsupported destination {spec!r}: use gs://BUCKET/PREFIX or a "
                               "directory")
    return LocalDestination(spec)
