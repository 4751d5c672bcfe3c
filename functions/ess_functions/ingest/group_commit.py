"""Group commit: concurrent requests' frames written together in one statement.

Pub/Sub pushes many messages at once, and a function instance serves them on several threads.
Each request parses its own message, then queues its frames here. Whichever request finds the
writer free becomes the leader: it takes everything queued (up to `max_frames`), decodes it in
one pass, writes it in one atomic statement and hands every request its own share of the
result. A statement costs about the same for 1 frame as for 8, so under load this multiplies
throughput; alone, a request writes at once.

Each message is still stored whole or not at all: if the group's statement fails with a
transient error (database down), every message in it fails and Pub/Sub redelivers each one. Any
other error is retried message by message, so one bad message never fails its neighbours.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ess.db.connect import is_transient
from ess.db.writer import WriteResult, write_messages
from ess.regmap import RegisterMap


@dataclass
class _Job:
    frames: list
    published: object = None        # the message's publish time (datetime), for the ledger
    done: bool = False
    result: WriteResult | None = None
    error: BaseException | None = None
    wake: threading.Event = field(default_factory=threading.Event)


class GroupWriter:
    """Writes queued messages in groups; thread-safe."""

    def __init__(self, take: Callable[[], object], give: Callable[[object], None],
                 discard: Callable[[object], None], maps: dict[tuple[str, int], RegisterMap],
                 max_frames: int = 400, max_writers: int = 2, backlog_frames: int = 40):
        self._take, self._give, self._discard = take, give, discard
        self.maps = maps
        self.max_frames, self.max_writers = max_frames, max_writers
        self.backlog_frames = backlog_frames
        self._queued_frames = 0
        self._lock = threading.Lock()
        self._queue: list[_Job] = []
        self._writers = 0
        self.stats = {"groups": 0, "messages": 0}   # statements written, messages in them

    def write(self, frames: list, published=None) -> WriteResult:
        """Store one message's frames; raise what its group's write raised.

        A waiting request is woken only when its own group is done or when it is first in
        the queue and may lead the next group (not every waiter on every commit).
        """
        job = _Job(frames, published)
        with self._lock:
            self._queue.append(job)
            self._queued_frames += len(frames)
        while True:
            with self._lock:
                if job.done:
                    break
                group = self._next_group() if self._may_start() else None
                if group is None:
                    job.wake.clear()
                else:
                    self._writers += 1
                    also = self._queue[0] if self._queue and self._may_start() else None
            if group is None:
                job.wake.wait()
                continue
            if also is not None:         # a backlog remains: let a second writer take it
                also.wake.set()
            try:
                self._write_group(group)
            finally:
                with self._lock:
                    self._writers -= 1
                    for j in group:
                        j.done = True
                    head = self._queue[0] if self._queue else None
                for j in group:
                    j.wake.set()
                if head is not None:     # it may lead the next group
                    head.wake.set()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _may_start(self) -> bool:
        """A writer may start: none is running, or a backlog waits and one more is allowed."""
        return bool(self._queue) and (self._writers == 0 or (
            self._writers < self.max_writers and self._queued_frames >= self.backlog_frames))

    def _next_group(self) -> list[_Job]:
        group, frames = [], 0
        while self._queue and (not group or frames + len(self._queue[0].frames)
                               <= self.max_frames):
            job = self._queue.pop(0)
            group.append(job)
            frames += len(job.frames)
        self._queued_frames -= frames
        return group

    def _write_group(self, group: list[_Job]) -> None:
        try:
            self.stats["messages"] += len(group)
            results = self._write([j.frames for j in group], [j.published for j in group])
        except BaseException as exc:
            if len(group) == 1 or is_transient(exc):
                for j in group:
                    j.error = exc
                return
            for j in group:             # find the message at fault; the others go through
                self._write_group([j])
            return
        for j, result in zip(group, results, strict=True):
            j.result = result

    def _write(self, messages: list[list], published: list) -> list[WriteResult]:
        self.stats["groups"] += 1
        conn = self._take()
        try:
            results = write_messages(conn, messages, self.maps, published=published)
        except BaseException:
            self._discard(conn)
            raise
        self._give(conn)
        return results
