"""`ess events`: alarm episodes per site, bank and rack (docs/events.md).

Exit 0 when no fault is active at the sites listed (warnings may be); 1 while a fault is active,
or when the database cannot be reached; 2 on a usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

from ..errors import PermanentError
from ..status.cli import add_site_day_options, connect_or_say
from . import report

_READ_TIMEOUT_S = 120.0


def _text(doc: dict) -> str:
    lines = []
    for e in doc["episodes"]:
        where = f"{e['site_id']}/bank{e['bank_id']}" + (
            f"/rack{e['rack_id']}" if e["rack_id"] is not None else "")
        held = _duration(e["duration_s"])
        end = (f"ACTIVE for {held}" if e["active"]
               else f"cleared {e['cleared']} after {held} (value {_num(e['cleared_value'])})")
        since = f" (since {e['since']})" if e["since"] != e["raised"] else ""
        lines.append(f"{where} {e['severity'].upper()} {e['alarm']}: raised {e['raised']}"
                     f"{since} (value {_num(e['raised_value'])}), {end}")
    a = doc["active"]
    lines.append(f"{len(doc['episodes'])} episode(s) listed; active now: {a['fault']} "
                 f"fault(s), {a['warning']} warning(s)")
    return "\n".join(lines)


def _num(v) -> str:
    return "?" if v is None else (str(int(v)) if float(v).is_integer() else f"{v:g}")


def _duration(s: float) -> str:
    s = int(s)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return (f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s" if m else f"{sec}s")


def _cmd_events(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    if args.date and (args.from_ or args.to):
        print("ess events: --date goes without --from and --to", file=sys.stderr)
        return 2
    conn = connect_or_say(args.dsn, "events", _READ_TIMEOUT_S)
    if conn is None:
        return 1
    try:
        sites = report.targets(conn, args.sites or os.environ.get("ESS_SITES_CONFIG"), args.site)
        d0 = args.date or args.from_
        d1 = args.date or args.to
        doc = report.collect(conn, sites, d0, d1, args.active, now)
    except PermanentError as exc:       # a bad sites file
        print(f"ess events: {exc}", file=sys.stderr)
        return 2
    finally:
        conn.close()
    print(json.dumps(doc, indent=1) if args.json else _text(doc))
    return 0 if doc["ok"] else 1


def register(sub) -> None:
    """Add `ess events` to the CLI."""
    p = sub.add_parser("events", help="alarm episodes (raised, cleared, active) per site")
    add_site_day_options(p, "sites in the events table")
    p.add_argument("--active", action="store_true", help="only the episodes active now")
    p.set_defaults(func=_cmd_events)
