"""What `make run` reports: per site, over the run (each bank's first to last stored poll), the
run's completeness (`run_completeness`: stored frames / ticks in that span; not the day's
`completeness` of `ess status` and the export, stored / expected ticks of a local day) and lost
frames, from the main database's frame ledger, counted by the same code as `ess status`
(ess.status.report); and, from the run's folder, the collector's counts, error lines and the
spool's depth."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from pathlib import Path


def run_status(dsn: str, sites, now: dt.datetime | None = None) -> dict[str, dict]:
    """Per site: `stored` frames, `ticks` from each bank's first to last poll,
    `run_completeness` (stored / ticks; 0 before the first frame) and `lost` frames (sequence
    gaps)."""
    from ess.db.connect import connect_dsn
    from ess.status.report import compute, settings

    interval, frozen_after = settings(sites)
    now = now or dt.datetime.now(dt.UTC)
    out = {}
    conn = connect_dsn(dsn)
    try:
        for site in sites.sites:
            today = now.astimezone(site.tz).date()
            days = compute(conn, site.site_id, site.timezone,
                           sorted(d.bank_id for d in site.devices),
                           today - dt.timedelta(days=1), today, interval, frozen_after, now)
            ticks = 0
            for bank in {d.bank_id for d in days}:
                polls = [p for d in days if d.bank_id == bank
                         for p in (d.first_poll, d.last_poll) if p is not None]
                if polls:
                    ticks += round((max(polls) - min(polls)).total_seconds() / interval) + 1
            stored = sum(d.stored for d in days)
            out[site.site_id] = {"stored": stored, "ticks": ticks,
                                 "run_completeness": round(min(1.0, stored / ticks), 6)
                                 if ticks else 0.0, "lost": sum(d.lost for d in days)}
    finally:
        conn.close()
    return out


def status_line(status: dict[str, dict]) -> str:
    """e.g. `run completeness 99.950% lost 0` over every site."""
    stored = sum(s["stored"] for s in status.values())
    ticks = sum(s["ticks"] for s in status.values())
    pct = 100 * min(1.0, stored / ticks) if ticks else 0.0
    return f"run completeness {pct:.3f}% lost {sum(s['lost'] for s in status.values())}"


def summary_fields(status: dict[str, dict]) -> dict:
    """SUMMARY's `lost_frames` (all sites) and `run_completeness` (per site)."""
    return {"lost_frames": sum(s["lost"] for s in status.values()),
            "run_completeness": {site: s["run_completeness"] for site, s in status.items()}}


def exit_code(summary: dict) -> int:
    """1 when the databases disagree (rows, or alarm episodes) or a frame was lost, else 0."""
    events = summary.get("events", {})
    return int(summary["rows_main"] != summary["rows_replica"] or summary["lost_frames"] > 0
               or events.get("main") != events.get("replica"))


def collector_stats(logs: Path, sites) -> dict[str, dict[str, int]]:
    """Frames polled and published per site, summed from the collector's summary log lines."""
    out = {s.site_id: {"frames_polled": 0, "frames_published": 0} for s in sites.sites}
    with contextlib.suppress(FileNotFoundError):
        for line in open(logs / "collector.log", errors="replace"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            site = rec.get("site")
            if site not in out:
                continue
            if rec.get("stage") == "poll" and "polls" in rec:
                out[site]["frames_polled"] += rec["polls"]
            elif rec.get("stage") == "publish" and "frames" in rec and "queued" in rec:
                out[site]["frames_published"] += rec["frames"]
    return out


def error_lines(logs: Path) -> int:
    """ERROR and CRITICAL lines in every log of the run."""
    n = 0
    for path in logs.glob("*.log"):
        with open(path, errors="replace") as fh:
            n += sum(1 for line in fh if '"severity": "ERROR"' in line
                     or '"severity": "CRITICAL"' in line)
    return n


def spool_depth(run_dir: Path) -> int:
    """Frames waiting in the collector's spool (-1 when it cannot be read)."""
    path = run_dir / "spool.sqlite"
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                            timeout=1)) as db:
        try:
            return db.execute("SELECT count(*) FROM frames").fetchone()[0]
        except sqlite3.Error:
            return -1
