"""`ess redecode`: replay archived raw frames into a database (see archive.redecode)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import UTC, datetime, timedelta

_LAG = re.compile(r"(\d+)([smhd])")


def _time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _lag(text: str) -> timedelta:
    m = _LAG.fullmatch(text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected e.g. 12h or 7d, got {text!r}")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
    return timedelta(**{unit: int(m.group(1))})


def _cmd(args: argparse.Namespace) -> int:
    from ess.db.connect import connect
    from ess.db.migrate import migrate
    from ess.logs import setup_logging
    from ess.regmap import MapError, load_map, load_map_file
    from ess.sites import ConfigError, load_sites

    from .redecode import redecode

    setup_logging("redecode", level="WARNING")
    try:
        sites = load_sites(args.sites) if args.sites else None
        maps = dict(sites.maps()) if sites else {load_map().key: load_map()}
        if args.map:
            new = load_map_file(args.map)
            maps[new.key] = new
    except (ConfigError, MapError) as exc:
        print(f"ess redecode: {exc}", file=sys.stderr)
        return 2
    if args.until <= args.since:
        print("ess redecode: --until must be after --since", file=sys.stderr)
        return 2
    conn = connect(args.dsn)
    try:
        migrate(conn, list(maps.values()))
        result = redecode(conn, args.source, args.since, args.until, maps, sites=sites,
                          update=bool(args.map), max_lag=args.max_lag,
                          progress=not args.quiet)
    finally:
        conn.close()
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(result.skipped.items())) or "none"
    print(f"redecode: {result.objects} objects, {result.messages} messages, {result.frames} "
          f"frames, {result.written}/{result.rows} rows "
          f"{'rewritten' if args.map else 'new'}; skipped messages: {skipped}")
    return 0


def register(sub) -> None:
    """Add `ess redecode` to the CLI."""
    p = sub.add_parser("redecode", help="replay archived raw frames into a database",
                       description="Replay archived raw frames (Avro objects, as written by the "
                       "raw-archive subscription or the local archiver) through the decoder "
                       "into a database. Idempotent; with --map, stored rows are rewritten.")
    p.add_argument("--source", required=True,
                   help="gs://BUCKET/frames/ or a local directory (holding YYYY-MM-DD/ folders)")
    p.add_argument("--since", required=True, type=_time, help="poll time, ISO 8601 (UTC if naive)")
    p.add_argument("--until", required=True, type=_time, help="poll time, exclusive")
    p.add_argument("--map", help="a changed map file (same map_id/version): rows are rewritten")
    p.add_argument("--dsn", help="target database (default ESS_DB_DSN / ESS_DB_INSTANCE)")
    # e.g. ESS_SITES_CONFIG=sites.yaml
    p.add_argument("--sites", default=os.environ.get("ESS_SITES_CONFIG"),
                   help="sites config (default ESS_SITES_CONFIG); without it the default map "
                   "and --map are used and sites are not checked")
    p.add_argument("--max-lag", type=_lag, default=timedelta(days=7),
                   help="longest poll-to-publish delay to look for (default 7d)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)
