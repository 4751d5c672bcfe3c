"""Per-site sender: moves committed frames from the spool to Pub/Sub, in order.

Live mode: frames arrive right after their spool commit and are packed into messages of up to
`max_frames` frames, waiting at most `max_latency`. A failed publish switches the site to
catch-up mode: once nothing is in flight, frames are read back from the spool oldest first
(rate-limited across sites) and published page by page; new frames only join the spool. When
the spool holds nothing newer, the site goes live again. The same catch-up replays the spool at
start-up. A frame leaves the spool only after its publish future succeeded.

The client retries an unreachable Pub/Sub silently (without limit when ordering), so a publish
unanswered for `stall_after` s marks the site stalled (one ERROR); the first success after a
stall or a failure logs "publish recovered" with the outage's length.

Frames travel as the bodies the spool stored (checked against their checksum when read back),
never decoded and encoded again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from ess.codec import FrameError, verify_frame
from ess.logs import event

from .config import PublishSettings
from .spool import AsyncSpool, Stored
from .stats import percentile

log = logging.getLogger(__name__)


class RateLimiter:
    """Token bucket shared by all senders for replayed frames."""

    def __init__(self, rate: float):
        self.rate, self.tokens, self.at = rate, rate, time.monotonic()

    async def take(self, n: int) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= min(n, self.rate):
                self.tokens -= n
                return
            await asyncio.sleep((min(n, self.rate) - self.tokens) / self.rate)


class SiteSender:
    """Publishes one site's frames (see module docstring)."""

    BUFFER = 20_000

    def __init__(self, site: str, publisher, spool: AsyncSpool, settings: PublishSettings,
                 limiter: RateLimiter, backoff_max: float = 30.0):
        self.site, self.publisher, self.spool, self.s = site, publisher, spool, settings
        self.limiter = limiter
        self.queue_max = max(1000, 2 * settings.max_frames * settings.max_in_flight)
        # (spool row id, frame body, poll start µs, when queued)
        self.queue: deque[tuple[int, bytes, int, float]] = deque()
        self.buffer: deque[tuple[int, bytes, int, float]] = deque(maxlen=self.BUFFER)
        self.catching_up = True
        self.inflight = 0
        self.wake = asyncio.Event()
        self.settled = asyncio.Event()
        self.settled.set()
        self.stopping = False
        self.failed_since: float | None = None
        self.stalled_since: float | None = None
        self._started: dict[asyncio.Future, float] = {}     # publishes in flight
        self.backoff, self.backoff_max = 0.0, backoff_max
        self._deletes: list[int] = []
        self._delete_task: asyncio.Task | None = None
        self.loop = asyncio.get_running_loop()
        # counters for the summary log (reset by `take_stats`)
        self.frames = self.messages = self.failures = self.replayed = 0
        self.latency_ms: list[float] = []

    # ---- input ----------------------------------------------------------------------------
    def offer(self, items: list[Stored]) -> None:
        """Frames just committed to the spool (in id order)."""
        now = time.monotonic()
        target = self.buffer if self.catching_up else self.queue
        target.extend((s.id, s.body, s.frame.poll_start_us, now) for s in items)
        if not self.catching_up and len(self.queue) > self.queue_max:
            # publishing is stalled (e.g. Pub/Sub unreachable): keep memory bounded, the frames
            # are in the spool and are read back in order once the messages in flight settle
            event(log, f"publishing for site {self.site} is behind: {len(self.queue)} frames "
                  "queued; continuing from the spool", stage="publish", level=logging.WARNING,
                  site=self.site, queued=len(self.queue))
            self.catching_up = True
            self.queue.clear()
        self.wake.set()

    def pending(self) -> int:
        return len(self.queue) + self.inflight

    # ---- deletes --------------------------------------------------------------------------
    def _delete_later(self, ids: list[int]) -> None:
        self._deletes.extend(ids)
        if self._delete_task is None or self._delete_task.done():
            self._delete_task = self.loop.create_task(self._delete_loop())

    async def _delete_loop(self) -> None:
        while self._deletes:
            ids, self._deletes = self._deletes, []
            await self.spool.delete(ids)

    async def _deletes_done(self) -> None:
        while self._delete_task is not None and not self._delete_task.done():
            await asyncio.shield(self._delete_task)

    # ---- publishing -----------------------------------------------------------------------
    def _publish(self, items: list[tuple[int, bytes, int, float]], replay: bool):
        """Start one publish; returns an asyncio future resolving to None or the exception."""
        ids = [x[0] for x in items]
        started = time.monotonic()
        self.inflight += 1
        self.settled.clear()
        done: asyncio.Future = self.loop.create_future()
        self._started[done] = started

        def finish(fut) -> None:
            exc = fut.exception()
            self.loop.call_soon_threadsafe(self._finished, ids, exc, started, replay, done)

        try:
            self.publisher.publish(self.site, [x[1] for x in items],
                                   [x[2] for x in items]).add_done_callback(finish)
        except Exception as exc:  # noqa: BLE001 - any client error means: retry from the spool
            self._finished(ids, exc, started, replay, done)
        return done

    def _finished(self, ids, exc, started, replay, done) -> None:
        self.inflight -= 1
        self._started.pop(done, None)
        if self.inflight == 0:
            self.settled.set()
        if exc is None:
            self._delete_later(ids)
            self.frames += len(ids)
            self.messages += 1
            self.replayed += len(ids) if replay else 0
            self.latency_ms.append((time.monotonic() - started) * 1000)
            if self.stalled_since is not None and self.failed_since is None:
                self._recovered()
        else:
            self.failures += 1
            if self.failed_since is None:
                self.failed_since = time.monotonic()
                event(log, f"publish failed for site {self.site}: {exc!r}; frames stay in the "
                      "spool and are replayed in order", stage="publish", level=logging.ERROR,
                      site=self.site, error=repr(exc))
            self.catching_up = True
            self.wake.set()
        if not done.done():
            done.set_result(exc)

    async def _live_step(self) -> None:
        if not self.queue:
            self.wake.clear()
            await self.wake.wait()
            return
        while len(self.queue) < self.s.max_frames and not self.catching_up and not self.stopping:
            left = self.queue[0][3] + self.s.max_latency - time.monotonic()
            if left <= 0:
                break
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), left)
            except TimeoutError:
                break
        if self.catching_up or not self.queue:
            return
        while self.inflight >= self.s.max_in_flight:
            self.settled.clear()
            await self.settled.wait()
        if self.catching_up or not self.queue:   # a publish failed meanwhile: the spool's turn
            return
        items = [self.queue.popleft() for _ in range(min(self.s.max_frames, len(self.queue)))]
        self._publish(items, replay=False)

    async def _catch_up(self) -> None:
        await self.settled.wait()
        await self._deletes_done()
        if self.failed_since is not None:
            self.backoff = min(max(self.backoff * 2, 0.5), self.backoff_max)
            await asyncio.sleep(self.backoff)
        self.publisher.resume(self.site)
        self.queue.clear()
        self.buffer.clear()
        cursor = 0
        page = self.s.max_frames * max(1, min(self.s.max_in_flight, 50))
        while not self.stopping:
            rows = await self.spool.read(self.site, cursor, page)
            if not rows:
                if len(self.buffer) == self.buffer.maxlen:     # overflowed: read on
                    self.buffer.clear()
                    continue
                self.queue.extend(x for x in self.buffer if x[0] > cursor)
                self.buffer.clear()
                self.catching_up = False
                if self.failed_since is not None or self.stalled_since is not None:
                    self._recovered()
                self.backoff = 0.0
                return
            now = time.monotonic()
            waits = []
            for k in range(0, len(rows), self.s.max_frames):
                chunk = rows[k:k + self.s.max_frames]
                await self.limiter.take(len(chunk))
                items = [(*row, now) for row in await self._checked(chunk)]
                if items:
                    waits.append(self._publish(items, replay=True))
            results = await asyncio.gather(*waits)
            if any(r is not None for r in results):
                return          # run() comes back here after the back-off
            cursor = rows[-1][0]

    def _recovered(self) -> None:
        since = min(t for t in (self.failed_since, self.stalled_since) if t is not None)
        outage = round(time.monotonic() - since, 1)
        event(log, f"publish recovered for site {self.site} after {outage} s", stage="publish",
              site=self.site, outage_s=outage, replayed=self.replayed)
        self.failed_since = self.stalled_since = None

    async def _watch_stall(self) -> None:
        """Marks the site stalled once a publish in flight has waited `stall_after` s."""
        stall_after = self.s.stall_after
        while True:
            await asyncio.sleep(min(1.0, stall_after / 4))
            if self.stalled_since is not None or self.failed_since is not None or not self._started:
                continue
            oldest = min(self._started.values())
            waited = time.monotonic() - oldest
            if waited >= stall_after:
                self.stalled_since = oldest
                event(log, f"publish stalled for site {self.site}: no answer from Pub/Sub for "
                      f"{waited:.1f} s ({self.inflight} messages in flight); frames stay in the "
                      "spool", stage="publish", level=logging.ERROR, site=self.site,
                      error=f"no answer for {waited:.1f} s", in_flight=self.inflight)

    async def _checked(self, rows: list[tuple[int, int, bytes]]) -> list[tuple[int, bytes, int]]:
        """Spool rows (id, poll µs, body) as (id, body, poll µs), each body checked against its
        checksum; a corrupt row is set aside (bytes kept) and logged."""
        out = []
        for i, poll_us, body in rows:
            try:
                verify_frame(body)
            except FrameError as exc:
                await self.spool.set_aside(i, str(exc))
                event(log, f"spool row {i} of site {self.site} is undecodable ({exc}); set "
                      "aside in the spool's corrupt table", stage="spool", level=logging.ERROR,
                      site=self.site, reason=exc.reason, error=str(exc), row=i)
                continue
            out.append((i, body, poll_us))
        return out

    async def run(self) -> None:
        """Until `stop()`: catch up, then publish live, catching up again after failures.

        Any unexpected error is logged and the loop goes on from the spool after a pause.
        """
        watch = self.loop.create_task(self._watch_stall())
        try:
            await self._run()
        finally:
            watch.cancel()

    async def _run(self) -> None:
        while not self.stopping:
            try:
                if self.catching_up:
                    await self._catch_up()
                else:
                    await self._live_step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a dead sender would stop the site
                event(log, f"sender of site {self.site} failed: {type(exc).__name__}: {exc}; "
                      "restarting from the spool", stage="publish", level=logging.ERROR,
                      site=self.site, error=f"{type(exc).__name__}: {exc}")
                self.catching_up = True
                await asyncio.sleep(1.0)

    async def flush(self, timeout: float) -> None:
        """Publish what is queued and wait for results (bounded by `timeout`)."""
        end = time.monotonic() + timeout
        while (self.queue or self.inflight) and not self.catching_up and time.monotonic() < end:
            self.wake.set()
            await asyncio.sleep(0.02)
        await self._deletes_done()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()

    def take_stats(self) -> dict:
        out = {"frames": self.frames, "messages": self.messages, "failures": self.failures,
               "replayed": self.replayed, "queued": len(self.queue) + len(self.buffer),
               "latency_ms_p50": round(percentile(self.latency_ms, 0.5), 1),
               "latency_ms_p99": round(percentile(self.latency_ms, 0.99), 1)}
        self.frames = self.messages = self.failures = self.replayed = 0
        self.latency_ms = []
        return out
