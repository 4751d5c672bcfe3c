"""Behind a shared connection: units and requests that timed out wait out a back-off.

A timeout resets the connection (its late reply must not come on it), which costs every unit of
the gateway a reconnect. So a unit that got no reply at all in a poll is demoted as a whole, and
one that answered other requests loses only the request that timed out: it is not asked (its
blocks: timeout) until its back-off has passed. The back-off doubles from `initial` to `maximum`
with each timeout and ends with a reply, so a hung unit costs the others one reset per probe,
exponentially spaced, never one per tick.
"""

from __future__ import annotations

import time

UNIT = -1       # the key of the whole unit; requests are keyed by their plan index


class Demotions:
    """Back-off per unit and per request of one device."""

    def __init__(self, initial: float, maximum: float):
        self.initial, self.maximum = initial, maximum
        self._until: dict[int, float] = {}
        self._backoff: dict[int, float] = {}

    def active(self, key: int) -> bool:
        """True while `key` waits out its back-off."""
        return time.monotonic() < self._until.get(key, 0.0)

    def timed_out(self, key: int) -> float:
        """`key` timed out: demote it; return its back-off (seconds)."""
        b = min(max(2 * self._backoff.get(key, 0.0), self.initial), self.maximum)
        self._backoff[key], self._until[key] = b, time.monotonic() + b
        return b

    def answered(self, key: int) -> bool:
        """`key` got a reply: no back-off any more; True when it was demoted before."""
        self._until.pop(key, None)
        return self._backoff.pop(key, None) is not None
