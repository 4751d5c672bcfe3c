"""`make run`'s safety events (docs/events.md): the episodes of each sink's database, the
ingest functions' event lines, and what the status line and SUMMARY show of them."""

from __future__ import annotations

import json
from pathlib import Path

_EPISODES = ("SELECT site_id, bank_id, rack_id, alarm, severity, since, raised, raised_value, "
             "cleared, cleared_value FROM events ORDER BY site_id, bank_id, rack_id NULLS FIRST, "
             "alarm, since")


def episodes(dsn: str) -> list[dict]:
    """Every episode of one database, oldest first per alarm (times as ISO 8601 UTC)."""
    from ess.db.connect import connect_dsn

    conn = connect_dsn(dsn)
    try:
        cur = conn.cursor()
        cur.execute(_EPISODES)
        names = [d[0] for d in cur.description]
        out = []
        for row in cur.fetchall():
            item = dict(zip(names, row))
            for k in ("since", "raised", "cleared"):
                item[k] = item[k].isoformat() if item[k] is not None else None
            out.append(item)
        return out
    finally:
        conn.close()


def event_lines(logs: Path) -> list[dict]:
    """The `stage=event` lines the ingest functions logged (one per raised episode, from the
    sink that notifies)."""
    out = []
    for path in sorted(logs.glob("ingest-*.log")):
        with open(path, errors="replace") as fh:
            for line in fh:
                if '"stage": "event"' not in line:
                    continue
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    return out


def status_text(main: list[dict]) -> str:
    """e.g. `events 3 raised, 1 active (1 fault)` for the main database."""
    active = [e for e in main if e["cleared"] is None]
    faults = sum(e["severity"] == "fault" for e in active)
    return f"events {len(main)} raised, {len(active)} active ({faults} fault)"


def summary_fields(main: list[dict], replica: list[dict], lines: list[dict]) -> dict:
    """SUMMARY's `events`: each sink's episodes, the active ones, the event lines and their
    delay from the raising poll (max and p99)."""
    delays = sorted(x.get("delay_s", 0.0) for x in lines)
    p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))] if delays else None
    return {"events": {
        "main": main, "replica": replica,
        "active": sum(e["cleared"] is None for e in main),
        "active_faults": sum(e["cleared"] is None and e["severity"] == "fault" for e in main),
        "lines": len(lines), "line_delay_p99_s": p99,
        "line_delay_max_s": delays[-1] if delays else None}}
