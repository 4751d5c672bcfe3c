"""`make run`'s data status: per site, over the run (each bank's first to last stored poll),
completeness and lost frames from the main database's frame ledger, counted by the same code
as `ess status` (ess.status.report)."""

from __future__ import annotations

import datetime as dt


def run_status(dsn: str, sites, now: dt.datetime | None = None) -> dict[str, dict]:
    """Per site: `stored` frames, `ticks` from each bank's first to last poll, `completeness`
    (stored / ticks; 0 before the first frame) and `lost` frames (sequence gaps)."""
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
                                 "completeness": round(min(1.0, stored / ticks), 6)
                                 if ticks else 0.0, "lost": sum(d.lost for d in days)}
    finally:
        conn.close()
    return out


def status_line(status: dict[str, dict]) -> str:
    """e.g. `completeness 99.950% lost 0` over every site."""
    stored = sum(s["stored"] for s in status.values())
    ticks = sum(s["ticks"] for s in status.values())
    pct = 100 * min(1.0, stored / ticks) if ticks else 0.0
    return f"completeness {pct:.3f}% lost {sum(s['lost'] for s in status.values())}"


def summary_fields(status: dict[str, dict]) -> dict:
    """SUMMARY's `lost_frames` (all sites) and `completeness` (per site)."""
    return {"lost_frames": sum(s["lost"] for s in status.values()),
            "completeness": {site: s["completeness"] for site, s in status.items()}}


def exit_code(summary: dict) -> int:
    """1 when the databases disagree (rows, or alarm episodes) or a frame was lost, else 0."""
    events = summary.get("events", {})
    return int(summary["rows_main"] != summary["rows_replica"] or summary["lost_frames"] > 0
               or events.get("main") != events.get("replica"))
