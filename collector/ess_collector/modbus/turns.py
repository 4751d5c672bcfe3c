"""Whose turn it is on a connection: one unit at a time, first come first served, except that a
unit which already cost the others a timeout this tick waits behind every unit that did not."""

from __future__ import annotations

import asyncio
import time
from collections import deque


class Turns:
    """A fair lock with two queues: `acquire(low=False)` before `acquire(low=True)`."""

    def __init__(self):
        self.busy = False
        self._queues: tuple[deque, deque] = (deque(), deque())

    def _free_for(self, low: bool) -> bool:
        return not self.busy and not self._queues[0] and not (low and self._queues[1])

    async def acquire(self, deadline: float, low: bool = False) -> bool:
        """Wait for the turn until `deadline` (monotonic); False when it did not come."""
        if self._free_for(low):
            self.busy = True
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        queue = self._queues[low]
        queue.append(fut)
        timer = loop.call_later(left, _expire, fut)
        try:
            got = await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.result():
                self.release()          # handed over while we were being cancelled
            raise
        finally:
            timer.cancel()
            if fut in queue:
                queue.remove(fut)
        return got

    def release(self) -> None:
        """Hand the turn to the next waiter (normal ones first), or free it."""
        for queue in self._queues:
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(True)
                    return
        self.busy = False


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(False)
