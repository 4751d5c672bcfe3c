"""The one place SQL identifiers are quoted. SQL text is never built from data values."""

import re

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

