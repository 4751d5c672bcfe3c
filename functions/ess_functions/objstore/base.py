"""What every object store shares: its errors, what a stored object is, and the one mapping of a
provider's errors (Cloud Storage's, a file system's) to the store's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from ess.errors import EssError, PermanentError, TransientError

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


def dumps(doc: dict) -> bytes:
    """A small JSON document as stored (indented, keys sorted, a final newline)."""
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


class Producer:
    """A caller's `produce(file)`, whose own errors pass through the mapping unchanged (a failed
    COPY stays a database error, not a store error)."""

    def __init__(self, produce: Produce) -> None:
        self.produce, self.error = produce, None

    def __call__(self, out: BinaryIO) -> None:
        try:
            self.produce(out)
        except BaseException as exc:
            self.error = exc
            raise


@contextmanager
def provider_errors(action: str, where: str, *, provider: tuple = (Exception,),
                    changed: tuple = (), conflict: str = "", missing: tuple = (),
                    on_missing: EssError | None = None,
                    producer: Producer | None = None) -> Iterator[None]:
    """Map a provider's error raised by one operation on `where` to the store's.

    `changed` (a failed generation precondition) becomes Conflict (`conflict` or "... changed
    since it was read"); `missing` becomes `on_missing` when given; any other `provider` error
    becomes StoreError ("cannot <action> <where>: ..."). The store's own errors and the
    producer's pass through.
    """
    try:
        yield
    except EssError:
        raise
    except provider as exc:
        if producer is not None and exc is producer.error:
            raise
        if isinstance(exc, changed):
            raise Conflict(conflict or f"{where} changed since it was read") from exc
        if on_missing is not None and isinstance(exc, missing):
            raise on_missing from exc
        raise StoreError(f"cannot {action} {where}: {exc}") from exc
