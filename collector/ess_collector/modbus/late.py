"""RTU late replies: requests that timed out and whose reply may still arrive.

RTU frames carry no transaction id. A device answers its requests in order, so a request that
timed out can only get its late reply before that unit's next accepted reply (then everything
earlier of that unit is settled), and for at most `window` seconds. Another unit's reply settles
nothing: behind a gateway, a slow unit's late reply can come after other units answered. Kept per
gateway, across reconnects: a serial-to-Ethernet gateway passes a late reply to whichever
connection is open.
"""

from __future__ import annotations

import time

from .framing import Adu
from .pdu import Request


class LateReplies:
    """What may still arrive late: (unit, function, byte count) -> expiry times (monotonic)."""

    def __init__(self, window: float):
        self.window = window
        self._due: dict[tuple[int, int, int], list[float]] = {}

    def __bool__(self) -> bool:
        return bool(self._due)

    def expect(self, req: Request) -> None:
        """`req` timed out: its reply may still come."""
        key = (req.unit, req.function, req.byte_count)
        self._due.setdefault(key, []).append(time.monotonic() + self.window)

    def settle(self, unit: int) -> None:
        """A reply of `unit` was accepted: the late replies to its earlier requests would have
        come before it."""
        for k in [k for k in self._due if k[0] == unit]:
            del self._due[k]

    def find(self, unit: int, function: int, byte_count: int | None) -> tuple | None:
        """The expected late reply a frame (byte count None: an exception reply) would be."""
        now = time.monotonic()
        for k in list(self._due):
            self._due[k] = [t for t in self._due[k] if t > now]
            if not self._due[k]:
                del self._due[k]
        for k in self._due:
            if k[0] == unit and k[1] == function and byte_count in (None, k[2]):
                return k
        return None

    def take(self, adu: Adu) -> bool:
        """True (and forget it) when `adu` is an expected late reply."""
        if not self._due:
            return False
        fc = adu.function
        n = None if fc & 0x80 else (adu.pdu[1] if len(adu.pdu) > 1 else -1)
        k = self.find(adu.unit, fc & 0x7F, n)
        if k is None:
            return False
        self._due[k].pop(0)
        if not self._due[k]:
            del self._due[k]
        return True
