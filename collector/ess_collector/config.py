"""The `collector:` section of sites.yaml, validated field by field.

    collector:
      interval: 1.0            # seconds between polls; ticks are aligned to wall-clock multiples
      timeout: 0.5             # per Modbus request (and connect); must be below interval
      reconnect: {initial: 0.5, max: 30}   # reconnect back-off (doubles up to max), seconds
      topic: projects/my-project/topics/ess-frames   # ESS_TOPIC overrides it
      publish:
        max_frames: 10         # frames per message (one site per message)
        max_latency: 0.5       # seconds a frame may wait for companions
        ordering: true         # ordering key = site id (enable_message_ordering)
        timeout: 30            # seconds a publish may retry before it counts as failed
        replay_rate: 500       # backlog frames per second, all sites together
        max_in_flight: 100     # messages per site awaiting their publish result
      spool:
        path: spool.sqlite     # relative to the config file; ESS_SPOOL_PATH overrides it
        max_mb: 1024
        max_age_hours: 168
      stats_interval: 60       # seconds between poll/publish summary log events
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ess.sites import ConfigError, SitesConfig, load_sites


@dataclass(frozen=True)
class PublishSettings:
    """How frames become Pub/Sub messages."""

    topic: str
    max_frames: int = 10
    max_latency: float = 0.5
    ordering: bool = True
    timeout: float = 30.0
    replay_rate: float = 500.0
    max_in_flight: int = 100


@dataclass(frozen=True)
class SpoolSettings:
    """Where frames wait for their publish result, and how much may wait."""

    path: Path
    max_bytes: int = 1024 * 1024 * 1024
    max_age: float = 168 * 3600.0


@dataclass(frozen=True)
class CollectorSettings:
    """Everything the collector needs besides the sites."""

    publish: PublishSettings
    spool: SpoolSettings
    interval: float = 1.0
    timeout: float = 0.5
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    stats_interval: float = 60.0


_NUM = (int, float)


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def section(self, doc: dict, where: str, known: set[str]) -> dict:
        if not isinstance(doc, dict):
            self.problems.append(f"{where}: expected a mapping")
            return {}
        for key in sorted(set(doc) - known):
            self.problems.append(f"{where}.{key}: unknown field")
        return doc

    def number(self, doc: dict, key: str, where: str, default: float, *, minimum: float = 0,
               integer: bool = False, exclusive: bool = True) -> float:
        value = doc.get(key, default)
        ok_type = (isinstance(value, int) if integer else isinstance(value, _NUM))
        if isinstance(value, bool) or not ok_type:
            kind = "an integer" if integer else "a number"
            self.problems.append(f"{where}.{key}: must be {kind}, got {value!r}")
            return default
        if value < minimum or (exclusive and value == minimum):
            op = ">" if exclusive else ">="
            self.problems.append(f"{where}.{key}: must be {op} {minimum}, got {value!r}")
            return default
        return value


def collector_settings(cfg: SitesConfig, env: dict | None = None,
                       base_dir: Path | None = None) -> CollectorSettings:
    """Validate the `collector` section; raise ConfigError naming every bad field."""
    env = os.environ if env is None else env
    c = _Checker()
    doc = c.section(cfg.raw.get("collector") or {}, "collector",
                    {"interval", "timeout", "reconnect", "topic", "publish", "spool",
                     "stats_interval"})
    interval = c.number(doc, "interval", "collector", 1.0)
    timeout = c.number(doc, "timeout", "collector", min(0.5, interval / 2))
    if timeout >= interval:
        c.problems.append(f"collector.timeout: must be below collector.interval ({interval}), "
                          f"got {timeout}")
    rec = c.section(doc.get("reconnect") or {}, "collector.reconnect", {"initial", "max"})
    r_init = c.number(rec, "initial", "collector.reconnect", 0.5)
    r_max = c.number(rec, "max", "collector.reconnect", 30.0)
    if r_max < r_init:
        c.problems.append(f"collector.reconnect.max: must be >= reconnect.initial ({r_init})")
    stats = c.number(doc, "stats_interval", "collector", 60.0)

    # e.g. ESS_TOPIC=projects/my-project/topics/ess-frames
    topic = env.get("ESS_TOPIC") or doc.get("topic")
    if not isinstance(topic, str) or not topic.startswith("projects/") or "/topics/" not in topic:
        c.problems.append(f"collector.topic: missing or not projects/<p>/topics/<t> (got "
                          f"{topic!r}); set it or ESS_TOPIC")
    pub = c.section(doc.get("publish") or {}, "collector.publish",
                    {"max_frames", "max_latency", "ordering", "timeout", "replay_rate",
                     "max_in_flight"})
    max_frames = int(c.number(pub, "max_frames", "collector.publish", 10, integer=True))
    if max_frames > 1000:
        c.problems.append(f"collector.publish.max_frames: must be <= 1000, got {max_frames}")
    ordering = pub.get("ordering", True)
    if not isinstance(ordering, bool):
        c.problems.append(f"collector.publish.ordering: must be true or false, got {ordering!r}")
    publish = PublishSettings(
        topic=topic if isinstance(topic, str) else "", max_frames=max_frames,
        max_latency=c.number(pub, "max_latency", "collector.publish", 0.5, exclusive=False),
        ordering=bool(ordering),
        timeout=c.number(pub, "timeout", "collector.publish", 30.0),
        replay_rate=c.number(pub, "replay_rate", "collector.publish", 500.0),
        max_in_flight=int(c.number(pub, "max_in_flight", "collector.publish", 100, integer=True)))

    sp = c.section(doc.get("spool") or {}, "collector.spool", {"path", "max_mb", "max_age_hours"})
    # e.g. ESS_SPOOL_PATH=/var/lib/ess-collector/spool.sqlite
    raw_path = env.get("ESS_SPOOL_PATH") or sp.get("path", "spool.sqlite")
    if not isinstance(raw_path, str) or not raw_path:
        c.problems.append(f"collector.spool.path: must be a file path, got {raw_path!r}")
        raw_path = "spool.sqlite"
    path = Path(raw_path)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    spool = SpoolSettings(
        path=path,
        max_bytes=int(c.number(sp, "max_mb", "collector.spool", 1024) * 1024 * 1024),
        max_age=c.number(sp, "max_age_hours", "collector.spool", 168) * 3600.0)
    if c.problems:
        raise ConfigError(cfg.source, c.problems)
    return CollectorSettings(publish, spool, interval, timeout, r_init, r_max, stats)


def load_config(path: str | Path, env: dict | None = None) -> tuple[SitesConfig,
                                                                     CollectorSettings]:
    """Load and validate sites.yaml, including its collector section."""
    sites = load_sites(path)
    base = Path(path).resolve().parent if not str(path).startswith("gs://") else None
    return sites, collector_settings(sites, env, base)
