"""The collector's sender as a state machine, in-process (collector/ess_collector/sender.py),
through its public behaviour: frames committed to a real spool, a stand-in for the publisher
client whose publishes the test resolves. Start-up replays the spool in order, then the sender
is live (messages of at most max_frames, sent after max_latency); a failed publish switches to
catch-up (after back-off: resume the ordering key, replay from the spool oldest first); a stalled
publisher makes it continue from the spool; a frame leaves the spool only once published."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from ess.codec import BlockData, Frame, decode_frame
from ess_collector.config import PublishSettings
from ess_collector.sender import RateLimiter, SiteSender
from ess_collector.spool import AsyncSpool, Spool

T0 = int(time.time()) * 1_000_000 - 3600_000_000   # an hour ago: within the spool's max age


def frame(k: int) -> Frame:
    return Frame("site-a", 1, 0, T0 + k * 1_000_000, T0 + k * 1_000_000 + 5000, "default", 1,
                 {"ETC": BlockData(registers=Frame.registers_to_bytes([k % 65536, 0, 0, 0, 0]))})


def seq_of(item) -> int:
    return item.seq if isinstance(item, Frame) else decode_frame(item).seq


class Publisher:
    """What the sender needs of the Pub/Sub client: publish() returning a future, resume().
    `fail` publishes fail; with `hold`, futures stay pending until release(). As the client
    with message ordering does, a failure pauses the site's ordering key: its publishes fail
    until resume()."""

    def __init__(self, fail: int = 0, hold: bool = False, ordering: bool = True):
        self.fail, self.hold, self.paused, self.ordering = fail, hold, False, ordering
        self.sent: list[list[int]] = []          # seqs of each accepted message
        self.held: list[tuple[concurrent.futures.Future, list[int]]] = []
        self.resumed = 0

    def publish(self, site: str, frames: list, polls_us: list[int]) -> concurrent.futures.Future:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        seqs = [seq_of(f) for f in frames]
        if self.paused:
            fut.set_exception(RuntimeError("ordering key paused"))
        elif self.fail:
            self.fail -= 1
            self.paused = self.ordering
            fut.set_exception(RuntimeError("Pub/Sub unavailable"))
        elif self.hold:
            self.held.append((fut, seqs))
        else:
            self.sent.append(seqs)
            fut.set_result("message-id")
        return fut

    def release(self) -> None:
        self.hold = False
        for fut, seqs in self.held:
            self.sent.append(seqs)
            fut.set_result("message-id")
        self.held = []

    def fail_held(self) -> None:
        self.hold = False
        for fut, _ in self.held:
            self.paused = self.ordering
            fut.set_exception(RuntimeError("Pub/Sub unavailable"))
        self.held = []

    def resume(self, site: str) -> None:
        self.resumed += 1
        self.paused = False

    @property
    def seqs(self) -> list[int]:
        return [s for message in self.sent for s in message]


def settings(max_frames: int = 10, max_latency: float = 0.02, max_in_flight: int = 1,
             stall_after: float = 10.0):
    return PublishSettings(topic="projects/p/topics/t", max_frames=max_frames,
                           max_latency=max_latency, ordering=True, timeout=5.0,
                           replay_rate=1e6, max_in_flight=max_in_flight,
                           stall_after=stall_after)


class Site:
    """A spool, its asyncio front and a running sender for site-a."""

    def __init__(self, path, publisher: Publisher, s: PublishSettings, backlog: int = 0):
        self.spool = Spool(path / "spool.sqlite")
        self.spool.append([frame(k) for k in range(backlog)])
        self.publisher = publisher
        self.front = AsyncSpool(self.spool, lambda items: self.sender.offer(items))
        self.sender = SiteSender("site-a", publisher, self.front, s, RateLimiter(1e6),
                                 backoff_max=0.02)
        self.task = asyncio.get_running_loop().create_task(self.sender.run())

    def submit(self, first: int, n: int) -> None:
        for k in range(first, first + n):
            self.front.submit(frame(k))

    async def until(self, done, timeout: float = 3.0) -> None:
        end = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < end, (self.publisher.sent, self.spool.count())
            await asyncio.sleep(0.005)

    async def delivered(self, n: int) -> None:
        """Every one of n frames published and gone from the spool."""
        await self.until(lambda: sorted(set(self.publisher.seqs)) == list(range(1, n + 1))
                         and self.spool.count() == 0)

    async def close(self) -> dict:
        self.sender.stop()
        await self.task
        await self.front.close()
        return self.sender.take_stats()


@pytest.fixture
def tmp_path():
    """The spool's folder, in memory when /dev/shm exists: the spool fsyncs every commit
    (synchronous=FULL), and on a busy shared disk one fsync can take seconds; these tests time
    the sender, not the disk."""
    shm = Path("/dev/shm")
    d = Path(tempfile.mkdtemp(prefix="ess-sender-", dir=shm if shm.is_dir() else None))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run(scenario):
    return asyncio.run(asyncio.wait_for(scenario(), 10))


def test_start_up_replays_the_spool_in_order_then_goes_live(tmp_path):
    async def scenario():
        site = Site(tmp_path, Publisher(), settings(max_frames=10), backlog=25)
        await site.delivered(25)
        assert site.publisher.sent == [list(range(1, 11)), list(range(11, 21)),
                                       list(range(21, 26))]
        site.submit(25, 3)                       # live now: one message after max_latency
        await site.delivered(28)
        assert site.publisher.sent[-1] == [26, 27, 28]
        return await site.close()

    stats = run(scenario)
    assert (stats["frames"], stats["messages"], stats["replayed"]) == (28, 4, 25)


def test_live_messages_hold_at_most_max_frames_and_wait_at_most_max_latency(tmp_path):
    async def scenario():
        site = Site(tmp_path, Publisher(), settings(max_frames=5, max_latency=0.05))
        await site.until(lambda: not site.sender.catching_up)
        started = time.monotonic()
        site.submit(0, 12)
        await site.delivered(12)
        waited = time.monotonic() - started
        await site.close()
        return site.publisher.sent, waited

    sent, waited = run(scenario)
    assert sent == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]
    assert waited >= 0.05                        # the last two waited for max_latency


def test_a_failed_publish_keeps_the_frames_and_replays_them_in_order(tmp_path, caplog):
    async def scenario():
        publisher = Publisher()
        site = Site(tmp_path, publisher, settings(max_frames=4))
        await site.until(lambda: not site.sender.catching_up)
        resumed = publisher.resumed
        publisher.fail = 2                       # the live publish and the first replay fail
        site.submit(0, 6)
        await site.delivered(6)
        assert publisher.resumed >= resumed + 2  # the ordering key resumed before each replay
        await site.until(lambda: not site.sender.catching_up)   # live again: spool drained
        return await site.close()

    with caplog.at_level(logging.INFO, logger="ess_collector.sender"):
        stats = run(scenario)
    assert stats["failures"] >= 2 and stats["replayed"] == 6 and stats["frames"] == 6
    said = [r.getMessage() for r in caplog.records]
    assert sum("publish failed for site site-a" in m for m in said) == 1   # once per outage
    assert any("publish recovered for site site-a" in m for m in said)


def test_the_published_order_is_the_polled_order_across_an_outage(tmp_path):
    async def scenario():
        publisher = Publisher()
        site = Site(tmp_path, publisher, settings(max_frames=3), backlog=5)
        await site.delivered(5)
        publisher.fail = 1
        site.submit(5, 10)
        await site.delivered(15)
        await site.close()
        return publisher.seqs

    seqs = run(scenario)
    assert seqs == list(range(1, 16))            # nothing lost, nothing out of order


def test_no_live_message_overtakes_a_failed_one_without_ordering(tmp_path):
    """A live message waiting for a slot while the one in flight fails goes through the spool
    after it (without message ordering nothing else would keep the order)."""
    async def scenario():
        publisher = Publisher(hold=True, ordering=False)
        site = Site(tmp_path, publisher, settings(max_frames=3, max_in_flight=1))
        await site.until(lambda: not site.sender.catching_up)
        site.submit(0, 3)
        await site.until(lambda: publisher.held)
        site.submit(3, 3)                        # waits for the message in flight
        await asyncio.sleep(0.05)
        publisher.fail_held()
        await site.delivered(6)
        await site.close()
        return publisher.seqs

    assert run(scenario) == list(range(1, 7))


def test_a_frame_leaves_the_spool_only_once_published(tmp_path):
    async def scenario():
        publisher = Publisher(hold=True)
        site = Site(tmp_path, publisher, settings(max_frames=10))
        await site.until(lambda: not site.sender.catching_up)
        site.submit(0, 4)
        await site.until(lambda: publisher.held)
        await asyncio.sleep(0.05)
        assert site.spool.count() == 4           # in flight: still in the spool
        publisher.release()
        await site.delivered(4)
        return await site.close()

    assert run(scenario)["frames"] == 4


def test_a_stalled_publisher_makes_the_sender_continue_from_the_spool(tmp_path, caplog):
    async def scenario():
        publisher = Publisher(hold=True)
        site = Site(tmp_path, publisher, settings(max_frames=10, max_in_flight=1))
        await site.until(lambda: not site.sender.catching_up)
        n = site.sender.queue_max + 50
        site.submit(0, n)
        await site.until(lambda: site.sender.catching_up)
        assert len(site.sender.queue) <= site.sender.queue_max    # memory stays bounded
        publisher.release()
        await site.delivered(n)
        await site.close()
        return publisher.seqs, n

    with caplog.at_level(logging.WARNING, logger="ess_collector.sender"):
        seqs, n = run(scenario)
    assert any("is behind" in r.getMessage() for r in caplog.records)
    assert sorted(set(seqs)) == list(range(1, n + 1))
    assert seqs[10:] == sorted(seqs[10:])        # after the message in flight: spool order


def _publish_lines(caplog) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if r.name == "ess_collector.sender"]


def test_a_publish_left_unanswered_is_logged_as_a_stall_once_and_its_end_as_recovered(
        tmp_path, caplog):
    """The client retries an unreachable Pub/Sub silently: no publish fails, yet nothing
    leaves. The sender says so once, then says when the first publish came through."""
    async def scenario():
        publisher = Publisher(hold=True)
        site = Site(tmp_path, publisher, settings(max_frames=2, stall_after=0.1))
        await site.until(lambda: not site.sender.catching_up)
        site.submit(0, 4)
        await site.until(lambda: site.sender.stalled_since is not None)
        stalled = _publish_lines(caplog)
        await asyncio.sleep(0.4)                 # still stalled: said once
        again = _publish_lines(caplog)
        publisher.release()
        await site.delivered(4)
        await site.until(lambda: site.sender.stalled_since is None)
        await site.close()
        return stalled, again

    with caplog.at_level(logging.INFO, logger="ess_collector.sender"):
        stalled, again = run(scenario)
    assert [(lv, m.split(":")[0]) for lv, m in stalled] == [
        (logging.ERROR, "publish stalled for site site-a")]
    assert again == stalled
    said = _publish_lines(caplog)
    assert sum("publish recovered for site site-a" in m for _, m in said) == 1
    assert not any("publish failed" in m for _, m in said)


def test_a_failure_during_a_stall_is_one_outage(tmp_path, caplog):
    async def scenario():
        publisher = Publisher(hold=True)
        site = Site(tmp_path, publisher, settings(max_frames=2, stall_after=0.1))
        await site.until(lambda: not site.sender.catching_up)
        site.submit(0, 4)
        await site.until(lambda: site.sender.stalled_since is not None)
        publisher.fail_held()                    # the held publish fails at last
        await site.delivered(4)
        await site.until(lambda: not site.sender.catching_up)
        await site.close()

    with caplog.at_level(logging.INFO, logger="ess_collector.sender"):
        run(scenario)
    said = [m for _, m in _publish_lines(caplog)]
    assert [m.split(" for site")[0] for m in said if "publish" in m] == [
        "publish stalled", "publish failed", "publish recovered"], said


@pytest.mark.parametrize("rate, frames, seconds", [(100.0, 150, 0.45)])
def test_the_replay_rate_limits_frames_per_second(rate, frames, seconds):
    async def scenario():
        limiter = RateLimiter(rate)
        started = time.monotonic()
        for _ in range(frames // 10):
            await limiter.take(10)
        return time.monotonic() - started

    assert asyncio.run(scenario()) >= seconds    # the first `rate` frames are a burst
