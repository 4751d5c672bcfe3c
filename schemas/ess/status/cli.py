"""`ess status`: per site and bank, last seen, completeness, lost, missed, failed, frozen.

Exit 1 when a frame was lost in the reported days or a bank has been silent longer than
`--silent-after`; 2 on a usage or configuration error; 3 when the database is unavailable;
else 0 (ess.command).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime

from .. import command
from . import report
from .sql import SEEN

_READ_TIMEOUT_S = 600.0     # a month of many banks takes a while (the default is 10 s)


def _targets(conn, args, cfg) -> tuple[list[tuple[str, str, list[int]]], float, float]:
    """[(site, timezone, banks)], interval and frozen_after: from the sites config `cfg`, else
    the ledger (UTC days, 1 s ticks)."""
    frozen = args.frozen_after
    if cfg is not None:
        targets = [(s.site_id, s.timezone, sorted(d.bank_id for d in s.devices))
                   for s in cfg.sites]
        interval, configured = report.settings(cfg)
        frozen = frozen or configured
    else:
        seen: dict[str, list[int]] = {}
        since = datetime.now(UTC) - report.SEEN_WINDOW
        for site, bank in report._query(conn, SEEN, {"since": since}):
            seen.setdefault(site, []).append(bank)
        targets = [(s, "UTC", b) for s, b in seen.items()]
        interval = 1.0
    if args.site:
        targets = [t for t in targets if t[0] in args.site]
    return targets, interval, frozen or report.DEFAULT_FROZEN_AFTER


def _days(args, tz: str, now: datetime) -> tuple[date, date]:
    from zoneinfo import ZoneInfo

    today = now.astimezone(ZoneInfo(tz)).date()
    if args.date:
        return args.date, args.date
    return args.from_ or today, args.to or args.from_ or today


def collect(conn, args, now: datetime, cfg=None) -> dict:
    """The whole status document (what `--json` prints); `cfg` the sites config, if any."""
    targets, interval, frozen = _targets(conn, args, cfg)
    out: dict = {"now": now.isoformat(), "interval_s": interval, "frozen_after_s": frozen,
                 "banks": [], "days": [], "gaps": []}
    for site, tz, banks in targets:
        d0, d1 = _days(args, tz, now)
        days, gaps = report.status(conn, site, tz, banks, d0, d1, interval, frozen, now)
        for d in days:
            d.timezone = tz
        out["days"] += [d.as_dict() for d in sorted(days, key=lambda d: (d.bank_id, d.day))]
        seen = report.last_seen(conn, site, banks, now, frozen)
        kinds = report.kinds_by_bank(days)
        for b in seen:      # failed blocks by kind over the reported days
            b["failed_by_kind"] = kinds.get(b["bank_id"], {})
        out["banks"] += seen
        out["gaps"] += gaps
    return out


def _text(doc: dict) -> str:
    lines = []
    for b in doc["banks"]:
        age = "never" if b["age_s"] is None else f"{b['age_s']}s ago (lag {b['lag_s']}s)"
        kinds = ", ".join(f"{k} x{v}" for k, v in b["failed_by_kind"].items())
        lines.append(f"{b['site_id']}/bank{b['bank_id']}: last seen {age}"
                     + (f", FROZEN for {b['frozen_s']}s" if b["frozen"] else "")
                     + (f"; failed blocks: {kinds}" if kinds else ""))
    for d in doc["days"]:
        failed = ", ".join(f"{k} x{v}" for k, v in sorted(d["failed"].items()))
        lines.append(f"  {d['site_id']}/bank{d['bank_id']} {d['day']}: "
                     f"{100 * d['completeness']:.3f}% ({d['stored']}/{d['expected']}) "
                     f"lost={d['lost']} missed={d['missed']} failed={d['failed_polls']}"
                     + (f" [{failed}]" if failed else "")
                     + f" out_of_range={d['out_of_range']} frozen_s={d['frozen_s']}"
                     + (f" resets={d['resets']}" if d["resets"] else ""))
    for g in doc["gaps"]:
        what = (f"lost seq {g['first_seq']}..{g['last_seq']}" if g["kind"] == "lost"
                else f"reset seq {g['from_seq']} -> {g['to_seq']}")
        lines.append(f"  {g['site_id']}/bank{g['bank_id']}: {what} between {g['after']} "
                     f"and {g['before']}")
    return "\n".join(lines)


def _cmd_status(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    cfg = site_day_config(args)
    conn = command.connect(args.dsn, read_timeout=_READ_TIMEOUT_S)
    try:
        doc = collect(conn, args, now, cfg)
    finally:
        conn.close()
    silent = [b for b in doc["banks"] if b["age_s"] is None or b["age_s"] > args.silent_after]
    lost = sum(d["lost"] for d in doc["days"]) + sum(g["kind"] == "lost" for g in doc["gaps"])
    doc["ok"] = not silent and not lost
    print(json.dumps(doc, indent=1) if args.json else _text(doc))
    return command.OK if doc["ok"] else command.FINDINGS


def site_day_config(args: argparse.Namespace):
    """The sites config of `ess status` / `ess events` (None without one), after the mistakes
    their shared options can hold: --date with --from/--to, --from after --to, a --site the
    config does not list (a typo would report nothing and exit 0 while a bank is lost or a fault
    active). A bad config is told here, before connecting."""
    from ..sites import load_sites

    if args.date and (args.from_ or args.to):
        raise command.UsageError("--date goes without --from and --to")
    if args.from_ and args.to and args.from_ > args.to:
        raise command.UsageError(f"--from {args.from_} is after --to {args.to}")
    path = command.config_path(args)
    cfg = load_sites(path) if path else None
    unknown = sorted(set(args.site or ()) - {s.site_id for s in cfg.sites}) if cfg else []
    if unknown:
        raise command.UsageError(f"--site {', '.join(unknown)}: not in the sites config {path}")
    return cfg


def add_site_day_options(p, seen: str) -> None:
    """The options `ess status` and `ess events` share: --dsn, --config, --site, --date, --from,
    --to, --json; `seen` says where the sites come from without a sites config."""
    p.add_argument("--dsn", help="postgresql://... (default: ESS_DB_DSN or ESS_DB_INSTANCE)")
    command.add_config_option(p, f"without one, the {seen}, UTC days")
    p.add_argument("--site", action="append", help="only this site (repeatable)")
    p.add_argument("--date", type=date.fromisoformat, help="one local day (default: today)")
    p.add_argument("--from", dest="from_", type=date.fromisoformat, help="first local day")
    p.add_argument("--to", type=date.fromisoformat, help="last local day (default: --from)")
    p.add_argument("--json", action="store_true", help="print JSON")


def register(sub) -> None:
    """Add `ess status` to the CLI."""
    p = sub.add_parser("status", help="data status per site and bank from the frame ledger")
    add_site_day_options(p, "sites and banks seen in the ledger")
    p.add_argument("--silent-after", type=float, default=300.0,
                   help="seconds without a frame after which a bank counts as silent (exit 1)")
    p.add_argument("--frozen-after", type=float, help="seconds of identical registers that "
                   "make a bank frozen (default: collector.frozen_after, else 300)")
    p.set_defaults(func=_cmd_status)
