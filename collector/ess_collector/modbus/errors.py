"""Why a request got no accepted reply: one exception per block status (ess.errors hierarchy).

The poller turns each into its block's status; `reset` says whether the connection can no longer
be trusted (closed, and opened again for the next request).
"""

from __future__ import annotations

from ess.codec import BlockStatus
from ess.errors import TransientError


class RequestFailed(TransientError):
    """A request got no accepted reply; `status` is the block's status."""

    status = BlockStatus.TRANSPORT
    reset = True


class NoReply(RequestFailed):
    """Nothing answered the request within its budget; the connection is reset, so its late
    reply cannot come (some devices stamp it with a newer request's transaction id)."""

    reason = "timeout"
    status = BlockStatus.TIMEOUT


class LinkDown(RequestFailed):
    """Connection refused, reset, closed, or not open (backing off)."""

    reason = "transport"
    status = BlockStatus.TRANSPORT


class MismatchedReply(RequestFailed):
    """A reply broke the protocol or did not answer this request (unit, function, byte count,
    count); nothing of it is kept."""

    reason = "mismatched_reply"
    status = BlockStatus.MISMATCHED_REPLY


class BadCrc(RequestFailed):
    """An RTU frame failed its CRC-16 check."""

    reason = "bad_crc"
    status = BlockStatus.BAD_CRC


class UnansweredAfterDiscard(MismatchedReply):
    """The budget ended after replies that answer nothing of ours were discarded (a foreign or
    stale transaction id, a presumed late RTU reply): no reply could be shown to be ours."""


class Skipped(RequestFailed):
    """Not attempted: no time is left before the poll's deadline (pacing included)."""

    reason = "skipped"
    status = BlockStatus.SKIPPED
    reset = False
