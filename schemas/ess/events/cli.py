"""`ess events`: alarm episodes per site, bank and rack (docs/events.md).

Exit 0 when no fault is active at the sites listed (warnings may be); 1 while a fault is active;
2 on a usage or configuration error; 3 when the database is unavailable (ess.command).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from .. import command
from ..status.cli import add_site_day_options, site_day_config
from . import report

_READ_TIMEOUT_S = 120.0


def _text(doc: dict) -> str:
    wall = {x["site_id"]: _local_time(x["timezone"]) for x in doc["sites"]}
    lines = []
    for e in doc["episodes"]:
        local = wall.get(e["site_id"]) or _local_time("UTC")
        where = f"{e['site_id']}/bank{e['bank_id']}" + (
            f"/rack{e['rack_id']}" if e["rack_id"] is not None else "")
        held = _duration(e["duration_s"])
        end = (f"ACTIVE for {held}" if e["active"] else f"cleared {local(e['cleared'])} after "
               f"{held} (value {_num(e['cleared_value'])})")
        since = f" (since {local(e['since'])})" if e["since"] != e["raised"] else ""
        lines.append(f"{where} {e['severity'].upper()} {e['alarm']}: raised "
                     f"{local(e['raised'])}{since} (value {_num(e['raised_value'])}), {end}")
    a = doc["active"]
    lines.append(f"{len(doc['episodes'])} episode(s) listed; active now: {a['fault']} "
                 f"fault(s), {a['warning']} warning(s)")
    return "\n".join(lines)


def _local_time(tz: str):
    """ISO time (UTC, as in the JSON) -> the site's wall time with its offset."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    return lambda iso: datetime.fromisoformat(iso).astimezone(zone).isoformat(sep=" ")


def _num(v) -> str:
    return "?" if v is None else (str(int(v)) if float(v).is_integer() else f"{v:g}")


def _duration(s: float) -> str:
    s = int(s)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return (f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s" if m else f"{sec}s")


def _cmd_events(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    cfg = site_day_config(args)
    conn = command.connect(args.dsn, read_timeout=_READ_TIMEOUT_S)
    try:
        sites = report.targets(conn, cfg, args.site)
        doc = report.collect(conn, sites, args.date or args.from_, args.date or args.to,
                             args.active, now)
    finally:
        conn.close()
    print(json.dumps(doc, indent=1) if args.json else _text(doc))
    return command.OK if doc["ok"] else command.FINDINGS


def register(sub) -> None:
    """Add `ess events` to the CLI."""
    p = sub.add_parser("events", help="alarm episodes (raised, cleared, active) per site")
    add_site_day_options(p, "sites in the events table")
    p.add_argument("--active", action="store_true", help="only the episodes active now")
    p.set_defaults(func=_cmd_events)
