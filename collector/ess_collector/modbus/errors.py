"""Why a request got no accepted reply: one exception per block status (ess.errors hierarchy).

The poller turns each into its block's status; `reset` says whether the connection can no longer
be trusted (closed, and opened again for the next request).
"""

from __future__ import annotations

from ess.codec import BlockStatus
from ess.errors import TransientError


class RequestFailed(TransientError):
    """A request got no accepted reply; `status` is the block's status, `reason` its name."""

    status = BlockStatus.TRANSPORT
    reset = True
    cut_short = False       # the poll's deadline cut the wait below `timeout`

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.reason = cls.status.name.lower()


class NoReply(RequestFailed):
    """Nothing answered the request within its budget; the connection is reset, so its late
    reply cannot come (some devices stamp it with a newer request's transaction id)."""

    status = BlockStatus.TIMEOUT


class LinkDown(RequestFailed):
    """Connection refused, reset, closed, or not open (backing off)."""


class MismatchedReply(RequestFailed):
    """A reply broke the protocol or did not answer this request (unit, function, byte count,
    count); nothing of it is kept."""

    status = BlockStatus.MISMATCHED_REPLY


class BadCrc(RequestFailed):
    """An RTU frame failed its CRC-16 check."""

    status = BlockStatus.BAD_CRC


class UnansweredAfterDiscard(MismatchedReply):
    """The budget ended after replies that answer nothing of ours were discarded (a foreign or
    stale transaction id, a presumed late RTU reply): no reply could be shown to be ours."""


class TakenForLate(UnansweredAfterDiscard):
    """RTU: a frame shaped like this request's reply came, but was taken for the late reply to
    an earlier request of the unit (when in doubt the block fails). The unit answers: it is not
    demoted for it."""


class Skipped(RequestFailed):
    """Not attempted: no time is left before the poll's deadline (pacing included)."""

    status = BlockStatus.SKIPPED
    reset = False
