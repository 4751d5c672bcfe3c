"""The one place SQL identifiers (and generated time bounds) are quoted. SQL text is never built
from data values."""

import re
from datetime import datetime

from ..errors import PermanentError

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class UnsafeIdentifier(PermanentError):
    """An identifier is not a plain lower-case SQL name."""

    reason = "unsafe_identifier"


def ident(name: str) -> str:
    """Quote a table or column name; only plain lower-case names are accepted."""
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise UnsafeIdentifier(f"not a safe SQL identifier: {name!r}")
    return '"' + name + '"'



_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?"
                 r"[+-][0-9]{2}:[0-9]{2}")


def timestamptz(when: datetime) -> str:
    """A `timestamptz` literal of an aware datetime the code computed (a day's bounds), for
    statements that take no parameters (COPY): the planner prunes partitions by it, which it
    cannot by a `current_setting()` (docs/export.md). Never for a value from input."""
    if not isinstance(when, datetime) or when.utcoffset() is None:
        raise UnsafeIdentifier(f"not an aware datetime: {when!r}")
    text = when.isoformat()
    if not _TS.fullmatch(text):
        raise UnsafeIdentifier(f"not a plain ISO 8601 time: {text!r}")
    return f"'{text}'::timestamptz"
