"""A local directory as an object store: the same layout and operations as Cloud Storage.

Files are replaced atomically (a temporary file, then a rename or a link). The generation is the
file's mtime in nanoseconds (checked just before the rename); custom metadata is kept next to the
file in `<name>.json` unless the store is opened with `keep_metadata=False`. File system errors
are mapped through `base.provider_errors`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .base import (
    OCTET,
    UPLOAD_CHUNK,
    Conflict,
    DestinationError,
    Produce,
    Producer,
    Stored,
    dumps,
    provider_errors,
)


class DirStore:
    """A local directory with the same layout; files are replaced atomically (temp + rename)."""

    def __init__(self, root: str | Path, keep_metadata: bool = True) -> None:
        self.root, self.keep_metadata = Path(root), keep_metadata
        self.url = str(self.root)

    def uri(self, key: str) -> str:
        return str(self.root / key)

    def _call(self, action: str, key: str, producer: Producer | None = None):
        """The one mapping of the file system's errors (OSError) for an operation on `key`."""
        return provider_errors(action, self.uri(key), provider=(OSError,), producer=producer)

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
        with self._call("stat", key):
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
        with self._call("read", key):
            return (self.root / key).read_bytes()

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix`, sorted (temporary and metadata files left out)."""
        base = self.root / prefix if prefix.endswith("/") else self.root
        if not base.exists():
            return []
        with self._call("list", prefix):
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
                    raise Conflict(f"{path} changed since it was read")
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
        """Write file `key` from `produce(file)` through a temporary file (no chunks); the
        producer's own errors pass through."""
        producer = Producer(produce)
        with self._call("write", key, producer):
            path = self._replace(key, producer, if_generation_match)
            self._write_metadata(key, metadata)
            st = path.stat()
            return Stored(st.st_mtime_ns, st.st_size, self._metadata(key))

    def set_metadata(self, key: str, stored: Stored, metadata: dict[str, str]) -> Stored:
        if not self.keep_metadata:
            return stored  # the export keeps it in its manifests
        with self._call("update", key):
            self._write_metadata(key, metadata)
        return Stored(stored.generation, stored.size, dict(metadata), stored.metageneration)

    def move(self, key: str, new_key: str) -> Stored:
        """Rename `key` to `new_key` (only if absent, else Conflict); mtime and metadata kept."""
        dst = self.root / new_key
        with self._call("move", key):
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
            raise Conflict(f"{path} changed since it was read")
        with self._call("delete", key):
            path.unlink(missing_ok=True)

    def read_json(self, key: str) -> tuple[dict | None, int]:
        path = self.root / key
        with self._call("read", key):
            try:
                return json.loads(path.read_bytes()), self._gen(path)
            except FileNotFoundError:
                return None, 0

    def write_json(self, key: str, doc: dict, if_generation_match: int) -> int:
        return self.put(key, dumps(doc), if_generation_match=if_generation_match).generation

