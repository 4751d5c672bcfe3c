"""What `ess events` reads: the episodes of sites over local days, and the active ones."""

from __future__ import annotations

from datetime import UTC, date, datetime

from ..db.quote import ident
from ..status.report import day_bounds
from .sql import TABLE

_COLS = ("site_id", "bank_id", "rack_id", "alarm", "severity", "since", "raised",
         "raised_value", "cleared", "cleared_value")
LISTED = (f"SELECT {', '.join(_COLS)} FROM {ident(TABLE)} WHERE site_id = %s "
          "AND since < %s AND (cleared IS NULL OR cleared >= %s) "
          "ORDER BY bank_id, rack_id NULLS FIRST, raised, alarm")
ACTIVE = (f"SELECT severity, count(*) FROM {ident(TABLE)} WHERE cleared IS NULL "
          "AND site_id = ANY(%s) GROUP BY severity")
SITES = f"SELECT DISTINCT site_id FROM {ident(TABLE)} ORDER BY 1"


def _fetch(conn, text: str, params: tuple) -> list:
    cur = conn.cursor()
    try:
        cur.execute(text, params)
        return cur.fetchall()
    finally:
        cur.close()


def targets(conn, cfg, only: list[str] | None) -> list[tuple[str, str]]:
    """[(site, time zone)]: the sites config's (`cfg`), else the sites in the table (UTC)."""
    if cfg is not None:
        found = [(s.site_id, s.timezone) for s in cfg.sites]
    else:
        found = [(s, "UTC") for (s,) in _fetch(conn, SITES, ())]
    return [t for t in found if not only or t[0] in only]


def _episode(row, now: datetime) -> dict:
    item = dict(zip(_COLS, row))
    end = item["cleared"] or now
    item["duration_s"] = round((end - item["since"]).total_seconds(), 3)
    item["active"] = item["cleared"] is None
    for k in ("since", "raised", "cleared"):
        item[k] = item[k].astimezone(UTC).isoformat() if item[k] is not None else None
    return item


def collect(conn, sites: list[tuple[str, str]], d0: date | None, d1: date | None,
            active_only: bool, now: datetime) -> dict:
    """The `--json` document: the episodes overlapping each site's local days d0..d1 (default
    today), active ones only with `active_only`, and the active count per severity."""
    out: dict = {"now": now.isoformat(), "episodes": [], "sites": []}
    for site, tz in sites:
        start = day_bounds(d0 or _today(now, tz), tz)[0]
        end = day_bounds(d1 or d0 or _today(now, tz), tz)[1]
        out["sites"].append({"site_id": site, "timezone": tz, "from": start.isoformat(),
                             "to": end.isoformat()})
        for row in _fetch(conn, LISTED, (site, end, start)):
            item = _episode(row, now)
            if item["active"] or not active_only:
                out["episodes"].append(item)
    counts = dict(_fetch(conn, ACTIVE, ([s for s, _ in sites],))) if sites else {}
    out["active"] = {"fault": counts.get("fault", 0), "warning": counts.get("warning", 0)}
    out["ok"] = out["active"]["fault"] == 0
    return out


def _today(now: datetime, tz: str) -> date:
    from zoneinfo import ZoneInfo

    return now.astimezone(ZoneInfo(tz)).date()
