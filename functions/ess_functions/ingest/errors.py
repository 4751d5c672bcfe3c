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
    kept = None   # the envelope.Message to quarantine: the raw request body and usable fields


class QuarantineError(TransientError):
    """A poison message could not be preserved; the delivery must fail so it is retried."""

    reason = "quarantine_failed"


class EmptyMessage(PermanentError):
    """A message holds no frames (or no bytes at all)."""

    reason = "empty_message"


class TooManyFrames(PermanentError):
    """A message holds more frames than the per-message limit (ESS_MAX_FRAMES)."""

    reason = "too_many_frames"


class MessageTooLarge(PermanentError):
    """A message's data or push body is larger than the limit (ESS_MAX_MESSAGE_BYTES)."""

    reason = "message_too_large"


class BankOutOfRange(PermanentError):
    """A frame's bank id does not fit the database's smallint bank_id column (1..32767)."""

    reason = "bank_id_out_of_range"


class PollTimeOutOfRange(PermanentError):
    """A frame's poll start lies outside the years 1..9999, or its poll lasts longer than the
    ledger's int4 microseconds (~35 minutes)."""

    reason = "poll_time_out_of_range"


class SeqOutOfRange(PermanentError):
    """A frame's sequence number does not fit the ledger's bigint seq column."""

    reason = "seq_out_of_range"


class UnknownBank(PermanentError):
    """A frame's (site, bank) is not a device of the sites configuration."""

    reason = "unknown_bank"


class WrongDeviceMap(PermanentError):
    """A frame's map is configured, but not the map of the device (site, bank) it names."""

    reason = "wrong_device_map"


class NoBlocks(PermanentError):
    """A frame carries no blocks at all."""

    reason = "no_blocks"


class UnknownBlocks(PermanentError):
    """A frame carries block names its map does not define."""

    reason = "unknown_blocks"
