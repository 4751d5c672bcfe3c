"""Errors of the ingest function; each carries the `reason` code it is logged and kept under.

Permanent errors (the message can never be stored as sent) are quarantined and acknowledged;
transient ones make the delivery fail, so Pub/Sub redelivers the message.
"""

from __future__ import annotations

from ess.errors import PermanentError, TransientError


class UnknownSite(PermanentError):
    """A frame names a site that the sites configuration does not list."""

    reason = "unknown_site"


class UnknownMap(PermanentError):
    """A frame names a map id and version that no configured device uses."""

    reason = "unknown_map_version"


class BadPayload(PermanentError):
    """The push request carries no decodable Pub/Sub message."""

    reason = "bad_payload"


class QuarantineError(TransientError):
    """A poison message could not be preserved; the delivery must fail so it is retried."""

    reason = "quarantine_failed"
