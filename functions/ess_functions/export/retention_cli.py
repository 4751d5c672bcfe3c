"""`ess retention`: the retention task from a shell (docs/scaling.md): drop the raw days past
`raw_days` whose export manifests match the database, re-export late site-days, prune the
rollup tiers. Mistakes are told by ess.command (a bad config or destination 2, the database or
the store unavailable 3)."""

from __future__ import annotations

import argparse
import json
import os

from ess import command


def _cmd_retention(args: argparse.Namespace) -> int:
    from ess.db.retention import policy_from
    from ess.logs import setup_logging
    from ess.sites import load_sites

    from ..objstore import open_store
    from .retention import run_retention
    from .run import QUERY_TIMEOUT

    setup_logging("export", level=args.log_level)
    bucket = os.environ.get("ESS_EXPORT_BUCKET", "").strip()
    dest_spec = args.dest or (f"gs://{bucket}/{os.environ.get('ESS_EXPORT_PREFIX', '')}"
                              if bucket else "")
    config_path = command.config_path(args)
    if not config_path:
        raise command.UsageError("no sites configuration: pass --config or set "
                                 "ESS_SITES_CONFIG")
    if not dest_spec:
        raise command.UsageError("no destination: pass --dest gs://BUCKET/PREFIX or DIR, or "
                                 "set ESS_EXPORT_BUCKET")
    config = load_sites(config_path)
    policy = policy_from(config.raw)
    dest = open_store(dest_spec, keep_metadata=False)
    dest.check()
    conn = command.connect(args.dsn, read_timeout=QUERY_TIMEOUT)
    try:
        summary = run_retention(conn, config, dest, policy, args.format)
    finally:
        conn.close()
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        print(f"ess retention: raw_days {policy.raw_days}: {summary['dropped']} range(s) "
              f"dropped, {summary['kept']} kept, {summary['reexported']} site-day(s) "
              f"re-exported; rollup rows pruned: {sum(summary['pruned'].values())}")
    return command.OK


def register(sub) -> None:
    """Add `ess retention` to the CLI."""
    p = sub.add_parser("retention", help="drop exported raw days past the retention tier, "
                                         "prune rollups")
    p.add_argument("--dest", help="the export's gs://BUCKET/PREFIX or directory (default: "
                                  "gs://$ESS_EXPORT_BUCKET/$ESS_EXPORT_PREFIX)")
    p.add_argument("--dsn", help="postgresql://... (default: ESS_DB_DSN or ESS_DB_INSTANCE)")
    command.add_config_option(p, "its `retention` section and ESS_RETENTION_* set the tiers")
    p.add_argument("--format", choices=("csv", "csv.gz", "parquet"), default="csv",
                   help="format of a re-export of late rows (the bucket's format)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--log-level", default="WARNING", help="structured log level on stderr")
    p.set_defaults(func=_cmd_retention)
