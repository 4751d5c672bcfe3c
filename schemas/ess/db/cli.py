"""`ess db ...` subcommands."""

from __future__ import annotations

import argparse
import sys
from datetime import date


def _maps(refs: list[str]):
    from ..regmap import load_map

    return [load_map(r) for r in (refs or ["default"])]


def _cmd_migrate(args: argparse.Namespace) -> int:
    """Errors (a bad map, the database down, a failed migration) are told by ess.command."""
    from ..command import connect
    from .migrate import ensure_partitions, migrate

    maps = _maps(args.map)          # a bad map is told before the database is needed
    conn = connect(args.dsn)
    try:
        m = migrate(conn, maps, mode=args.mode, dry_run=args.print)
        if m is None:
            print("ess db migrate: schema is up to date")
        elif args.print:
            print(";\n\n".join(m.statements) + ";")
        else:
            print(f"ess db migrate: applied migration {m.version} ({m.mode}): {m.description}")
        if not args.print:
            ensure_partitions(conn)
    finally:
        conn.close()
    return 0


def _setup_maps(args: argparse.Namespace) -> list:
    """The maps of the sites config's devices (one of each), else --map (default: default)."""
    from ..command import config_path

    path = config_path(args)
    if path:
        from ..sites import load_sites

        return list(load_sites(path).maps().values())
    return _maps(args.map)


def _cmd_setup(args: argparse.Namespace) -> int:
    """Errors (a bad sites file or map, the database down, missing rights named with their fix)
    are told by ess.command."""
    from ..command import connect
    from .setup import setup

    maps = _setup_maps(args)        # a bad sites file or map is told before the database
    conn = connect(args.dsn)
    try:
        m = setup(conn, maps, args.writer or [], args.reader or [])
    finally:
        conn.close()
    done = "schema up to date" if m is None else f"applied migration {m.version} ({m.mode})"
    print(f"ess db setup: {done}; granted {len(args.writer or [])} ingest and "
          f"{len(args.reader or [])} export users")
    return 0


def _cmd_rollup(args: argparse.Namespace) -> int:
    """Bring the rollups up to date once (or rebuild a poll-time range); print a JSON summary.
    Errors (a bad map, the database down) are told by ess.command."""
    import json
    from dataclasses import asdict
    from datetime import UTC, datetime, time

    from ..command import connect
    from .rollup import rebuild, run_rollups

    maps = _maps(args.map)          # a bad map is told before the database is needed
    conn = connect(args.dsn)
    try:
        if args.rebuild:
            first, last = (datetime.combine(d, time(), UTC) for d in args.rebuild)
            result = rebuild(conn, maps, first, last)
        else:
            result = run_rollups(conn, maps)
    finally:
        conn.close()
    print(json.dumps(asdict(result), default=str))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from .schema import render_schema

    sys.stdout.write(render_schema(_maps(args.map), args.mode))
    return 0


def register(sub) -> None:
    """Add `ess db` to the CLI."""
    from ..command import add_config_option

    p = sub.add_parser("db", help="database schema tools")
    dbsub = p.add_subparsers(dest="db_cmd", required=True)
    m = dbsub.add_parser("migrate", help="create or update tables for the maps (idempotent)")
    m.add_argument("--dsn", help="postgresql://... (default: ESS_DB_DSN or ESS_DB_INSTANCE)")
    m.add_argument("--map", action="append", help="map name or file (repeatable; default: default)")
    m.add_argument("--mode", choices=("auto", "timescale", "partitioned"), default="auto")
    m.add_argument("--print", action="store_true", help="print the pending SQL, apply nothing")
    m.set_defaults(func=_cmd_migrate)
    u = dbsub.add_parser("rollup", help="update the 1-minute and 1-hour rollups once "
                                        "(docs/data-spec.md, Rollups)")
    u.add_argument("--dsn", help="postgresql://... (default: ESS_DB_DSN or ESS_DB_INSTANCE)")
    u.add_argument("--map", action="append", help="map name or file (repeatable; default: default)")
    u.add_argument("--rebuild", nargs=2, metavar=("FROM", "TO"), type=date.fromisoformat,
                   help="recompute every bucket polled in [FROM, TO) (UTC days, YYYY-MM-DD), "
                        "e.g. after `ess redecode --map` rewrote rows")
    u.set_defaults(func=_cmd_rollup)
    s = dbsub.add_parser("setup", help="as the schema owner: own schema public, migrate, "
                         "create the coming partitions, grant the ingest and export users")
    s.add_argument("--dsn", help="postgresql://... (default: ESS_DB_DSN or ESS_DB_INSTANCE)")
    add_config_option(s, "its devices' maps are migrated (default: --map, else the default map)")
    s.add_argument("--map", action="append", help="map name or file (repeatable)")
    s.add_argument("--writer", action="append", help="ingest user (repeatable)")
    s.add_argument("--reader", action="append", help="export user (repeatable)")
    s.set_defaults(func=_cmd_setup)
    r = dbsub.add_parser("render", help="print the DDL a fresh database gets")
    r.add_argument("--map", action="append")
    r.add_argument("--mode", choices=("timescale", "partitioned"), default="timescale")
    r.set_defaults(func=_cmd_render)
