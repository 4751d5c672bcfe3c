"""The project's one exception hierarchy.

Every error the project raises on purpose is an `EssError`. Two branches say what a caller does:
`PermanentError` (the input can never succeed as given: refuse it, quarantine it, exit 2) and
`TransientError` (retry later). `reason` is the short code that logs, quarantine metadata and
the README's error policy use; each subclass sets its own.
"""

from __future__ import annotations


class EssError(Exception):
    """Base class of every error the project raises on purpose."""

    reason = "error"
    transient = False


class PermanentError(EssError, ValueError):
    """The input can never be processed as given; retrying cannot help."""

    reason = "permanent"


class TransientError(EssError, RuntimeError):
    """A dependency is unavailable for now; the same call may succeed later."""

    reason = "transient"
    transient = True
