"""`ess retention`: the retention task from a shell (docs/scaling.md): drop the raw days past
`raw_days` whose export manifests match the database, prune the rollup tiers."""

from __future__ import annotations

import argparse
import json
import os
import sys


def _cmd_retention(args: argparse.Namespace) -> int:
    from ess.db.connect import connect
    from ess.db.retention import RetentionConfigError, policy_from
    from ess.logs import setup_logging
    from ess.sites import ConfigError, load_sites

    from ..objstore import DestinationError, open_store
    from .retention import run_retention
    from .run import QUERY_TIMEOUT

    setup_logging("export", level=args.log_level)
    bucket = os.environ.get("ESS_EXPORT_BUCKET", "").strip()
    dest_spec = args.dest or (f"gs://{bucket}/{os.environ.get('ESS_EXPORT_PREFIX', '')}"
                              if bucket else "")
    config_path = args.config or os.environ.get("ESS_SITES_CONFIG")
    try:
        if not dest_spec or not config_path:
            raise ConfigError("ess retention", ["needs --dest (or ESS_EXPORT_BUCKET) and "
                                                "--config (or ESS_SITES_CONFIG)"])
        config = load_sites(config_path)
        policy = policy_from(config.raw)
        dest = open_store(dest_spec, keep_metadata=False)
        dest.check()
    except (ConfigError, RetentionConfigError, DestinationError) as exc:
        print(f"ess retention: {exc}", file=sys.stderr)
        return 2
    conn = connect(args.dsn, read_timeout=QUERY_TIMEOUT)
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
    return 0


def register(sub) -> None:
    """Add `ess retention` to the CLI."""
    p = sub.add_parser("retention", help="drop exported raw days past the retention tier, "
                                         "prune rollups")
    p.add_argument("--dest", help="the export's gs://BUCKET/PREFIX or directory (default: "
                                  "gs://$ESS_EXPORT_BUCKET/$ESS_EXPORT_PREFIX)")
    p.add_argument("--dsn", help="postgresql://... (default: ESS_DB_DSN or ESS_DB_INSTANCE)")
    p.add_argument("--config", help="sites.yaml (default: ESS_SITES_CONFIG); its `retention` "
                                    "section and ESS_RETENTION_* set the tiers")
    p.add_argument("--format", choices=("csv", "csv.gz", "parquet"), default="csv",
                   help="format of a re-export of late rows (the bucket's format)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--log-level", default="WARNING", help="structured log level on stderr")
    p.set_defaults(func=_cmd_retention)
