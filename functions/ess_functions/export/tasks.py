"""The export function's other scheduled tasks, chosen by a request's `task`: `rollup` (every
few minutes: the 1-minute and 1-hour rollups, ess.db.rollup) and `retention` (daily: the tiers
of ess.db.retention against the export's manifests). `export` (the default) is the daily export.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from ess.db.retention import policy_from
from ess.db.rollup import run_rollups
from ess.logs import event
from ess.sites import SitesConfig

from ..objstore import ObjectStore
from .request import BadRequest
from .retention import run_retention

log = logging.getLogger("ess.export")
TASKS = ("export", "rollup", "retention")


def parse_task(value: object) -> str:
    """`export` (default), `rollup` or `retention`, else BadRequest."""
    if value in (None, ""):
        return "export"
    if value not in TASKS:
        raise BadRequest(f"unknown task {value!r}: expected one of {', '.join(TASKS)}")
    return str(value)


def rollup(conn, config: SitesConfig) -> dict:
    """Bring the rollups up to date; log one `stage=rollup` line (`complete` false: a writer
    outlived the wait and the watermark stayed; status `busy`: another run held the lock)."""
    result = run_rollups(conn, list(config.maps().values()))
    held = "" if result.complete else "; watermark held (a writer outlived the wait)"
    event(log, f"rollups: {result.status}, {sum(result.minutes.values())} minute and "
          f"{sum(result.hours.values())} hour rows{held}", stage="rollup",
          level=logging.INFO if result.complete else logging.WARNING, status=result.status,
          minutes=sum(result.minutes.values()), hours=sum(result.hours.values()),
          complete=result.complete, watermark=str(result.watermark))
    return {"task": "rollup", **asdict(result),
            "watermark": None if result.watermark is None else result.watermark.isoformat()}


def run_task(task: str, conn, config: SitesConfig, dest: ObjectStore | None,
             fmt: str) -> dict:
    """Run `rollup` or `retention` (its policy from the sites config and ESS_RETENTION_*)."""
    if task == "rollup":
        return rollup(conn, config)
    if dest is None:
        raise BadRequest("retention needs the export bucket: ESS_EXPORT_BUCKET is not set")
    return run_retention(conn, config, dest, policy_from(config.raw), fmt)
