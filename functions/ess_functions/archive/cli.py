"""`ess redecode`: replay archived raw frames into a database (see archive.redecode)."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

from ess import command

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


def _source(spec: str):
    """The archive to read, checked before the database is needed: a missing directory or bucket
    is a DestinationError (exit 2), a store that cannot be listed a StoreError (3)."""
    from pathlib import Path

    from ..objstore import DestinationError, open_store

    store = open_store(spec)
    if not spec.startswith("gs://") and not Path(spec.removeprefix("file://")).is_dir():
        raise DestinationError(f"--source {spec}: no such directory")
    store.check()
    return store


def _cmd(args: argparse.Namespace) -> int:
    """Mistakes in the arguments, config, maps or source are told before connecting."""
    from ess.db.migrate import migrate
    from ess.logs import setup_logging
    from ess.regmap import load_map, load_map_file
    from ess.sites import load_sites

    from .redecode import archive_objects, redecode

    setup_logging("redecode", level="WARNING")
    path = command.config_path(args)
    sites = load_sites(path) if path else None
    maps = dict(sites.maps()) if sites else {load_map().key: load_map()}
    if args.map:
        new = load_map_file(args.map)
        maps[new.key] = new
    if args.until <= args.since:
        raise command.UsageError("--until must be after --since")
    store = _source(args.source)
    names = archive_objects(store, args.since, args.until, args.max_lag)
    conn = command.connect(args.dsn)
    try:
        migrate(conn, list(maps.values()))
        result = redecode(conn, store, args.since, args.until, maps, sites=sites,
                          update=bool(args.map), max_lag=args.max_lag,
                          progress=not args.quiet, names=names)
    finally:
        conn.close()
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(result.skipped.items())) or "none"
    print(f"redecode: {result.objects} objects, {result.messages} messages, {result.frames} "
          f"frames, {result.written}/{result.rows} rows "
          f"{'rewritten' if args.map else 'new'}, {result.raised} alarm episode(s) raised; "
          f"skipped messages: {skipped}")
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
    command.add_config_option(p, "without one, the default map and --map are used and sites "
                              "are not checked")
    p.add_argument("--max-lag", type=_lag, default=timedelta(days=7),
                   help="longest poll-to-publish delay to look for (default 7d)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)
