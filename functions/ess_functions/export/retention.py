"""Retention against the export's manifests (docs/scaling.md, "Retention tiers").

`Manifests(dest)` answers ess.db.retention's question "what did the export write for this site
and local day?": from `_manifests/date=D/manifest.json`, the rows of each of the site's files
(only when every file is in the store at the generation the manifest names) and, for the ledger,
the frames its data status counted. `run_retention` retires the raw ranges past `raw_days`
with it, re-exports once the site-days the database holds more rows of than their files (late
frames: then their ranges are tried again), and prunes the rollup tiers.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from ess.db.retention import RetentionPolicy, prune_rollups, retire, retire_range
from ess.db.retention import expected_counts as _expected
from ess.logs import event
from ess.sites import SitesConfig

from ..objstore import ObjectStore
from .manifest import manifest_key
from .run import export_jobs

log = logging.getLogger("ess.export")


class Manifests:
    """`exported(site, day)`: {table: rows, "frames": frames} from the day's manifest, None
    without one (or when a file it lists is missing or was replaced since)."""

    def __init__(self, dest: ObjectStore) -> None:
        self.dest = dest
        self._docs: dict[date, dict | None] = {}

    def forget(self, day: date) -> None:
        """Read the day's manifest again on the next question (it was rewritten)."""
        self._docs.pop(day, None)

    def __call__(self, site: str, day: date) -> dict[str, int] | None:
        if day not in self._docs:
            self._docs[day] = self.dest.read_json(manifest_key(day.isoformat()))[0]
        doc = self._docs[day]
        files = {k: e for k, e in ((doc or {}).get("files") or {}).items()
                 if e.get("site") == site}
        if not files:
            return None
        counts: dict[str, int] = {}
        for key, entry in files.items():
            stored = self.dest.stat(key)
            if stored is None or stored.generation != entry.get("generation"):
                return None
            counts[entry["type"]] = counts.get(entry["type"], 0) + int(entry.get("rows") or 0)
        status = (doc.get("data_status") or {}).values()
        counts["frames"] = sum(int(s.get("stored") or 0) for s in status
                               if s.get("site_id") == site)
        return counts


def _late(result: dict) -> set[tuple[str, date]]:
    """Site-days of a refused range with more rows than their files and none dropped yet: the
    export can still write them whole."""
    out = set()
    for m in result.get("mismatch") or []:
        if m.get("day") and not m.get("dropped") and m.get("exported") is not None \
                and m["present"] > int(m["exported"]):
            out.add((m["site"], date.fromisoformat(m["day"])))
    return out


def past_due_days(end: datetime, raw_days: int, now: datetime) -> int:
    """Whole days since the range ending at `end` fell due (`raw_days` after its end): 0 at the
    first daily run that may drop it, 1 or more once an earlier run has kept it."""
    return max(0, (now - end - timedelta(days=raw_days)) // timedelta(days=1))


def _log_range(r: dict, raw_days: int, now: datetime) -> None:
    """One `stage=retention` line per range: dropped (INFO), or kept with its reason (WARNING;
    `past_due_days` tells a first refusal from one that persists)."""
    due = past_due_days(datetime.fromisoformat(r["end"]), raw_days, now)
    what = "dropped" if r["dropped"] else f"kept, {r.get('reason', '')}, {due} days past due"
    event(log, f"retention {r['start']}..{r['end']}: {what}", stage="retention",
          level=logging.INFO if r["dropped"] else logging.WARNING, start=r["start"],
          end=r["end"], dropped=r["dropped"], reason=r.get("reason"), past_due_days=due,
          rows=r.get("rows"), mismatch=r.get("mismatch"))


def run_retention(conn, config: SitesConfig, dest: ObjectStore, policy: RetentionPolicy,
                  fmt: str, now: datetime | None = None) -> dict:
    """Retire, re-export late site-days and retry their ranges, prune the rollups; a summary."""
    now = now or datetime.now(UTC)
    zones = {s.site_id: s.timezone for s in config.sites}
    manifests = Manifests(dest)
    results = retire(conn, zones, manifests, policy.raw_days, now)
    late = set().union(*(_late(r) for r in results)) if results else set()
    if late:
        jobs = [(config.site(site), day) for site, day in sorted(late)]
        export_jobs(conn, jobs, dest, fmt=fmt, config=config)
        for day in {d for _, d in late}:
            manifests.forget(day)
        for k, r in enumerate(results):
            if _late(r):
                lo, hi = (datetime.fromisoformat(r[x]) for x in ("start", "end"))
                results[k] = retire_range(conn, lo, hi, zones, _expected(zones, manifests, lo,
                                                                          hi))
    for r in results:
        _log_range(r, policy.raw_days, now)
    banks = [(d.site_id, d.bank_id) for d in config.devices()]
    pruned = prune_rollups(conn, list(config.maps().values()), banks, policy, now)
    event(log, f"rollups pruned: {sum(pruned.values())} rows", stage="retention",
          pruned=pruned)
    return {"task": "retention", "ranges": results, "reexported": len(late),
            "dropped": sum(bool(r["dropped"]) for r in results),
            "kept": sum(not r["dropped"] for r in results), "pruned": pruned}
