"""The collector process: one asyncio task per device on a drift-free, wall-clock-aligned
schedule, frames into the spool, spool into Pub/Sub (one sender per site).

Ticks fall on multiples of `interval` in Unix time. A poll that overruns its tick makes the
device skip the ticks it missed (counted and logged, never queued); a slow or dead device
delays no other device.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field

from ess.codec import BlockData, BlockStatus, Frame
from ess.logs import event
from ess.sites import SitesConfig

from .config import CollectorSettings
from .frozen import FrozenWatch
from .modbus import DevicePoller, Gateway, Pacing
from .polling import DevicePolling, polling_defaults
from .sender import RateLimiter, SiteSender
from .spool import AsyncSpool, Spool
from .stats import percentile

log = logging.getLogger(__name__)
DEADLINE_MARGIN = 0.01   # seconds a poll keeps free before the next tick
LATE_WINDOW = 2          # intervals an RTU late reply is waited for: up to the unit's next poll


@dataclass
class DeviceStats:
    """Poll counters of one device."""

    polls: int = 0
    missed: int = 0
    failed_blocks: int = 0
    jitter_ms: list[float] = field(default_factory=list)
    poll_ms: list[float] = field(default_factory=list)
    last_failure: str = ""
    logged_at: float = 0.0
    overrun_logged_at: float = -1e9

    def take(self) -> dict:
        out = {"polls": self.polls, "missed_ticks": self.missed,
               "failed_blocks": self.failed_blocks,
               "jitter_ms_p50": round(percentile(self.jitter_ms, 0.5), 2),
               "jitter_ms_p99": round(percentile(self.jitter_ms, 0.99), 2),
               "poll_ms_p50": round(percentile(self.poll_ms, 0.5), 2),
               "poll_ms_p99": round(percentile(self.poll_ms, 0.99), 2)}
        self.polls = self.missed = self.failed_blocks = 0
        self.jitter_ms, self.poll_ms = [], []
        return out


@dataclass
class RunSummary:
    """What one `Collector.run` did (returned for tests and benchmarks)."""

    polls: int = 0
    missed_ticks: int = 0
    failed_blocks: int = 0
    jitter_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    wall_s: float = 0.0

    @property
    def jitter_p99_ms(self) -> float:
        return percentile(self.jitter_ms, 0.99)


async def sleep_until(t: float) -> None:
    """Sleep until the wall clock reaches `t` (never returns early)."""
    while (left := t - time.time()) > 0:
        await asyncio.sleep(left)


async def _stop_publisher(publisher, timeout: float) -> None:
    """Stop the client, waiting at most `timeout` (during an outage its flush may never end;
    whatever it still holds is in the spool)."""
    done = threading.Event()

    def stop() -> None:
        try:
            publisher.stop()
        finally:
            done.set()

    threading.Thread(target=stop, name="publisher-stop", daemon=True).start()
    end = time.monotonic() + timeout
    while not done.is_set() and time.monotonic() < end:
        await asyncio.sleep(0.05)


def make_pollers(sites: SitesConfig, s: CollectorSettings) -> list[DevicePoller]:
    """One poller per device; devices with `shared_connection` share their host and port's
    Gateway (one connection), the others get one each."""
    shared: dict[tuple[str, int], Gateway] = {}
    pollers = []
    for d in sites.devices():
        p = s.polling.get(d.name) or DevicePolling(**polling_defaults())
        pacing = Pacing(p.framing, p.pause_between_requests, p.pause_after_connect)
        gateway = None
        if p.shared_connection:
            gateway = shared.get((d.host, d.port))
            if gateway is None:
                gateway = shared[(d.host, d.port)] = Gateway(
                    d.host, d.port, timeout=s.timeout, pacing=pacing,
                    reconnect_initial=s.reconnect_initial, reconnect_max=s.reconnect_max,
                    late_window=LATE_WINDOW * s.interval, shared=True, site=d.site_id)
        pollers.append(DevicePoller(d, s.timeout, s.reconnect_initial, s.reconnect_max,
                                    gateway=gateway, pacing=pacing,
                                    max_registers=p.max_registers_per_read,
                                    late_window=LATE_WINDOW * s.interval))
    return pollers


class Collector:
    """Polls every configured device and publishes its frames through the spool."""

    def __init__(self, sites: SitesConfig, settings: CollectorSettings, publisher=None):
        self.sites, self.settings = sites, settings
        self._publisher = publisher
        self.stats: dict[str, DeviceStats] = {}
        self.frozen: dict[str, FrozenWatch] = {}
        self.summary = RunSummary()
        self.senders: dict[str, SiteSender] = {}
        self.pollers: list[DevicePoller] = []

    def _committed(self, stored: list[tuple[int, Frame]]) -> None:
        by_site: dict[str, list[tuple[int, Frame]]] = {}
        for item in stored:
            by_site.setdefault(item[1].site_id, []).append(item)
        for site, items in by_site.items():
            sender = self.senders.get(site)
            if sender is not None:
                sender.offer(items)

    async def _device_loop(self, poller: DevicePoller, stop: asyncio.Event,
                           max_ticks: int | None, start_at: float) -> None:
        interval = self.settings.interval
        st = self.stats[poller.device.name]
        tick = max(math.ceil(time.time() / interval), math.ceil(start_at / interval)) * interval
        done = 0
        while not stop.is_set() and (max_ticks is None or done < max_ticks):
            await sleep_until(tick)
            if stop.is_set():
                break
            jitter = time.time() - tick
            deadline = time.monotonic() + (tick + interval - time.time()) - DEADLINE_MARGIN
            blocks, start_us, end_us = await self._poll(poller, deadline)
            self.spool.submit(poller.frame(blocks, start_us, end_us))
            self._record(poller, st, blocks, (end_us - start_us) / 1000, jitter * 1000)
            done += 1
            tick = self._skip_missed(poller, st, tick + interval)

    @staticmethod
    async def _poll(poller: DevicePoller, deadline: float) -> tuple[dict, int, int]:
        """One poll; an unexpected error yields a frame of transport failures."""
        try:
            return await poller.poll(deadline)
        except Exception:  # noqa: BLE001 - a bug must not stop this device for good
            log.exception("%s: poll failed unexpectedly", poller.device.name)
            poller.close()
            now = int(time.time() * 1e6)
            return ({b.name: BlockData(BlockStatus.TRANSPORT) for b in poller.device.map.blocks},
                    now, now)

    def _record(self, poller: DevicePoller, st: DeviceStats, blocks: dict[str, BlockData],
                poll_ms: float, jitter_ms: float) -> None:
        """Count one poll; log when the set of failed blocks changes (else once a minute)."""
        failed = [n for n, b in blocks.items() if b.status != BlockStatus.OK]
        st.polls += 1
        st.failed_blocks += len(failed)
        st.jitter_ms.append(jitter_ms)
        st.poll_ms.append(poll_ms)
        self.summary.polls += 1
        self.summary.failed_blocks += len(failed)
        self.summary.jitter_ms.append(jitter_ms)
        what = ", ".join(f"{n} {blocks[n].describe()}" for n in failed)
        if what != st.last_failure or (failed and time.monotonic() - st.logged_at > 60):
            st.last_failure, st.logged_at = what, time.monotonic()
            d = poller.device
            event(log, f"{d.name}: " + (what or "all blocks ok again"), stage="poll",
                  level=logging.WARNING if failed else logging.INFO, site=d.site_id,
                  device=d.name, failed=len(failed), latency_ms=round(poll_ms, 1))
        self._watch_frozen(poller, blocks)

    def _watch_frozen(self, poller: DevicePoller, blocks: dict[str, BlockData]) -> None:
        """Log when a bank's registers freeze (identical for frozen_after s) or thaw."""
        watch = self.frozen[poller.device.name]
        change = watch.update(blocks, time.time())
        if change:
            d = poller.device
            event(log, f"{d.name}: registers {change} (identical in every block since "
                  f"{watch.since:.0f})" if change == "frozen" else f"{d.name}: registers "
                  "changing again", stage="poll", level=logging.WARNING if watch.frozen
                  else logging.INFO, site=d.site_id, device=d.name, frozen=watch.frozen,
                  frozen_s=round(time.time() - watch.since) if watch.frozen else 0)

    def _skip_missed(self, poller: DevicePoller, st: DeviceStats, tick: float) -> float:
        """The next tick still ahead: ticks an overrun poll missed are counted, not queued."""
        now, interval = time.time(), self.settings.interval
        if now < tick:
            return tick
        missed = int((now - tick) // interval) + 1
        st.missed += missed
        self.summary.missed_ticks += missed
        if time.monotonic() - st.overrun_logged_at > 60:
            st.overrun_logged_at = time.monotonic()
            d = poller.device
            event(log, f"{d.name}: poll overran, {missed} tick(s) missed (logged at most once a "
                  "minute; see poll summaries)", stage="poll", level=logging.WARNING,
                  site=d.site_id, device=d.name, missed=missed)
        return tick + missed * interval

    async def _stats_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.settings.stats_interval)
            except TimeoutError:
                pass
            self.log_stats()

    def log_stats(self) -> None:
        """One poll event per device and one publish event per site."""
        for name, st in self.stats.items():
            if st.polls or st.missed:
                site = name.split("/", 1)[0]
                event(log, f"{name}: poll summary", stage="poll", site=site, device=name,
                      **st.take())
        for site, sender in self.senders.items():
            event(log, f"{site}: publish summary", stage="publish", site=site,
                  **sender.take_stats())
        for gw in {id(p.gateway): p.gateway for p in self.pollers}.values():
            counts = gw.take_counts()
            if any(counts.values()):
                event(log, f"{gw.name}: connection summary (replies discarded, resets)",
                      stage="poll", site=gw.site, gateway=gw.name, **counts)

    async def _open(self, publisher) -> list[DevicePoller]:
        """Open the spool, one sender per site (configured or with frames in the spool) and one
        poller per device."""
        s = self.settings
        spool = await asyncio.to_thread(Spool, s.spool.path, s.spool.max_bytes, s.spool.max_age)
        self.spool = AsyncSpool(spool, self._committed)
        limiter = RateLimiter(s.publish.replay_rate)
        site_ids = {site.site_id for site in self.sites.sites} | set(
            await asyncio.to_thread(spool.sites))
        for site in sorted(site_ids):
            self.senders[site] = SiteSender(site, publisher, self.spool, s.publish, limiter,
                                            s.reconnect_max)
        pollers = self.pollers = make_pollers(self.sites, s)
        for p in pollers:
            self.stats[p.device.name] = DeviceStats()
            self.frozen[p.device.name] = FrozenWatch(s.frozen_after)
        backlog = await self.spool.count()
        event(log, f"collector starting: {len(pollers)} devices, {len(self.senders)} sites, "
              f"{backlog} frames in the spool", stage="poll", devices=len(pollers),
              backlog=backlog, interval_s=s.interval, pid=os.getpid())
        return pollers

    async def _close(self, publisher, pollers: list[DevicePoller], sender_tasks: list,
                     stats_task: asyncio.Task, flush_timeout: float) -> int:
        """Flush what the senders hold, stop them and the publisher; return the spool's count."""
        for p in pollers:
            p.close()
        await self.spool.drained()
        await asyncio.gather(*(x.flush(flush_timeout) for x in self.senders.values()))
        for x in self.senders.values():
            x.stop()
        for t in sender_tasks:     # a sender may wait on publishes that cannot finish now
            t.cancel()
        await asyncio.gather(*sender_tasks, return_exceptions=True)
        stats_task.cancel()
        self.log_stats()
        left = await self.spool.count()
        await self.spool.close()
        await _stop_publisher(publisher, flush_timeout)
        return left

    async def run(self, stop: asyncio.Event | None = None, max_ticks: int | None = None,
                  start_at: float = 0.0, flush_timeout: float = 5.0) -> RunSummary:
        """Run until `stop` is set (or every device did `max_ticks` polls)."""
        from .publisher import FramePublisher

        stop = stop or asyncio.Event()
        cpu0, wall0 = time.process_time(), time.monotonic()
        publisher = self._publisher or FramePublisher(self.settings.publish)
        pollers = await self._open(publisher)
        sender_tasks = [asyncio.create_task(x.run()) for x in self.senders.values()]
        stats_task = asyncio.create_task(self._stats_loop(stop))
        device_tasks = [asyncio.create_task(self._device_loop(p, stop, max_ticks, start_at))
                        for p in pollers]
        devices_done = asyncio.gather(*device_tasks, return_exceptions=True)
        try:
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait([waiter, devices_done], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        finally:
            stop.set()
            for t in device_tasks:
                t.cancel()
            await asyncio.gather(devices_done, return_exceptions=True)
            left = await self._close(publisher, pollers, sender_tasks, stats_task, flush_timeout)
            self.summary.cpu_s = time.process_time() - cpu0
            self.summary.wall_s = time.monotonic() - wall0
            event(log, f"collector stopped: {self.summary.polls} polls, "
                  f"{self.summary.missed_ticks} missed ticks, {left} frames left in the spool",
                  stage="poll", polls=self.summary.polls, missed=self.summary.missed_ticks,
                  jitter_ms_p99=round(self.summary.jitter_p99_ms, 2), spool_left=left,
                  cpu_s=round(self.summary.cpu_s, 2))
        return self.summary
