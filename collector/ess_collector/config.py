"""The `collector:` section of sites.yaml, as settings objects.

Types, bounds and every default live in one place: the `collector` section of
schemas/sites.schema.json, which `ess.sites.parse_sites` checks (the README table is generated
from it: `python -m ess_collector.settings_doc`). This module fills in those defaults and checks
what a JSON Schema cannot say: timeout below interval, reconnect.max >= reconnect.initial, a
topic that env `ESS_TOPIC` may supply instead of the file, and each device's polling settings
(`ess_collector.polling`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ess import paths
from ess.sites import ConfigError, SitesConfig, load_sites

from .polling import DevicePolling, device_polling


@dataclass(frozen=True)
class PublishSettings:
    """How frames become Pub/Sub messages."""

    topic: str
    max_frames: int
    max_latency: float
    ordering: bool
    timeout: float
    replay_rate: float
    max_in_flight: int
    compress: bool = False          # codec message version 2 (docs/architecture.md)
    stall_after: float = 10.0       # s unanswered before a site counts as stalled


@dataclass(frozen=True)
class SpoolSettings:
    """Where frames wait for their publish result, and how much may wait."""

    path: Path
    max_bytes: int
    max_age: float


@dataclass(frozen=True)
class CollectorSettings:
    """Everything the collector needs besides the sites."""

    publish: PublishSettings
    spool: SpoolSettings
    interval: float
    timeout: float
    reconnect_initial: float
    reconnect_max: float
    stats_interval: float
    frozen_after: float
    polling: dict[str, DevicePolling] = field(default_factory=dict)   # by device name


@lru_cache(maxsize=1)
def collector_schema() -> dict:
    """The `collector` section of sites.schema.json (types, bounds, defaults, descriptions)."""
    return json.loads(paths.SITES_SCHEMA.read_text())["properties"]["collector"]


def with_defaults(doc: dict | None, schema: dict | None = None) -> dict:
    """`doc` (a schema-valid collector section) with every missing field set to its default;
    nested sections become dicts too. A field without a default (topic) is None when missing."""
    schema = schema or collector_schema()
    doc = doc or {}
    out = {}
    for key, prop in schema["properties"].items():
        if "properties" in prop:
            out[key] = with_defaults(doc.get(key), prop)
        else:
            value = doc.get(key, prop.get("default"))
            out[key] = int(value) if prop.get("type") == "integer" else value   # 10.0 -> 10
    return out


def _cross_field_problems(v: dict, topic: object) -> list[str]:
    problems = []
    if v["timeout"] >= v["interval"]:
        problems.append(f"collector.timeout: must be below collector.interval ({v['interval']}), "
                        f"got {v['timeout']}")
    rec = v["reconnect"]
    if rec["max"] < rec["initial"]:
        problems.append(f"collector.reconnect.max: must be >= reconnect.initial ({rec['initial']})")
    if not isinstance(topic, str) or not topic.startswith("projects/") or "/topics/" not in topic:
        problems.append(f"collector.topic: missing or not projects/<p>/topics/<t> (got "
                        f"{topic!r}); set it or ESS_TOPIC")
    return problems


def collector_settings(cfg: SitesConfig, env: dict | None = None,
                       base_dir: Path | None = None) -> CollectorSettings:
    """Settings of a parsed configuration; raise ConfigError naming every bad field."""
    env = os.environ if env is None else env
    raw = cfg.raw.get("collector") or {}
    v = with_defaults(raw)
    if "timeout" not in raw:         # the default never reaches the interval
        v["timeout"] = min(v["timeout"], v["interval"] / 2)
    # e.g. ESS_TOPIC=projects/my-project/topics/ess-frames
    topic = env.get("ESS_TOPIC") or v["topic"]
    problems = _cross_field_problems(v, topic)
    polling = device_polling(cfg, v["gateways"], v["interval"], problems)
    if problems:
        raise ConfigError(cfg.source, problems)
    sp = v["spool"]
    # e.g. ESS_SPOOL_PATH=/var/lib/ess-collector/spool.sqlite
    path = Path(env.get("ESS_SPOOL_PATH") or sp["path"])
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    spool = SpoolSettings(path=path, max_bytes=int(sp["max_mb"] * 1024 * 1024),
                          max_age=sp["max_age_hours"] * 3600.0)
    rec = v["reconnect"]
    return CollectorSettings(PublishSettings(topic=topic, **v["publish"]), spool, v["interval"],
                             v["timeout"], rec["initial"], rec["max"], v["stats_interval"],
                             v["frozen_after"], polling)


def load_config(path: str | Path, env: dict | None = None) -> tuple[SitesConfig,
                                                                     CollectorSettings]:
    """Load and validate sites.yaml, including its collector section."""
    sites = load_sites(path)
    base = Path(path).resolve().parent if not str(path).startswith("gs://") else None
    return sites, collector_settings(sites, env, base)
