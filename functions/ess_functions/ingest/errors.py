"""Errors of the ingest function; each carries the `reason` code it is logged and kept under.

Permanent errors (the message can never be stored as sent) are quarantined and acknowledged;
transient ones make the delivery fail, so Pub/Sub redelivers the message.
"""

from __future__ import annotations

from ess.errors import PermanentError, TransientError


class BadPayload(PermanentError):
    """The push request carries no decodable Pub/Sub message."""

    reason = "bad_payload"
    kept = None   # the envelope.Message to quarantine: the raw request body and usable fields


class QuarantineError(TransientError):
    """A poison message could not be preserved; the delivery must fail so it is retried."""

    reason = "quarantine_failed"


class MessageTooLarge(PermanentError):
    """A message's data or push body is larger than the limit (ESS_MAX_MESSAGE_BYTES)."""

    reason = "message_too_large"
