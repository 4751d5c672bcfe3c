"""`ess export`: the daily export for one day or a range (backfills), with a progress bar;
`ess export-migrate`: move a bucket or directory from the old date-first layout."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ess import command


def _plan(args: argparse.Namespace):
    """The (site, day) jobs and the checked destination; BadRequest & co. when unusable."""
    from ess.sites import load_sites

    from ..objstore import open_store
    from .request import BadRequest, date_range, parse_date, parse_format, plan_jobs

    # e.g. ESS_SITES_CONFIG=infra/examples/dev/sites.yaml
    config_path = command.config_path(args)
    # e.g. ESS_EXPORT_BUCKET=my-project-ess-csv (used when --dest is not given)
    bucket = os.environ.get("ESS_EXPORT_BUCKET", "").strip()
    dest_spec = args.dest or (f"gs://{bucket}/{os.environ.get('ESS_EXPORT_PREFIX', '')}"
                              if bucket else "")
    if args.date and (args.date_from or args.date_to):
        raise BadRequest("give --date or --from/--to, not both")
    if bool(args.date_from) != bool(args.date_to):
        raise BadRequest("--from and --to go together")
    days = ([parse_date(args.date)] if args.date else
            date_range(parse_date(args.date_from), parse_date(args.date_to))
            if args.date_from else None)
    if not config_path:
        raise BadRequest("no sites configuration: pass --config or set ESS_SITES_CONFIG")
    if not dest_spec:
        raise BadRequest("no destination: pass --dest gs://BUCKET/PREFIX or DIR, "
                         "or set ESS_EXPORT_BUCKET")
    args.format = parse_format(args.format, args.gzip)
    config = load_sites(config_path)
    jobs = plan_jobs(config, days=days, site=args.site)
    dest = open_store(dest_spec, keep_metadata=False)  # a directory: facts in the manifests
    dest.check()
    return jobs, dest, config


def _run(args: argparse.Namespace, conn, jobs, dest, config) -> dict:
    """Export the jobs with a progress bar (one step per file); return the summary."""
    from tqdm import tqdm

    from .run import export_jobs

    n_types = {id(s): len({t for d in s.devices for t in d.map.tables()}) for s, _ in jobs}
    total = sum(n_types[id(s)] for s, _ in jobs)
    with tqdm(total=total, unit="file", desc="export", disable=args.quiet,
              file=sys.stderr) as bar:
        def progress(r) -> None:
            bar.set_postfix_str(f"{r.date} {r.site} {r.type} {r.status}", refresh=False)
            bar.update(1)

        try:
            return export_jobs(conn, jobs, dest, fmt=args.format, on_file=progress,
                               config=config)
        finally:
            conn.close()


def _cmd_export(args: argparse.Namespace) -> int:
    """A bad request or config (2), the database or the store unavailable (3): ess.command."""
    from ess.logs import setup_logging

    from .dates import check_first_days
    from .run import QUERY_TIMEOUT

    setup_logging("export", level=args.log_level)
    jobs, dest, config = _plan(args)        # the request, the config, the destination first
    conn = command.connect(args.dsn, read_timeout=QUERY_TIMEOUT)
    try:
        check_first_days(conn, config, jobs)
    except BaseException:
        conn.close()
        raise
    summary = _run(args, conn, jobs, dest, config)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        retired = f", {len(summary['retired'])} retired site-day(s) left as they are" \
            if summary["retired"] else ""
        print(f"ess export: {summary['written']} written, {summary['unchanged']} unchanged, "
              f"{summary['conflicts']} conflicts, {len(summary['manifests'])} day(s) -> "
              f"{summary['destination']}{retired}")
    return command.FINDINGS if summary["conflicts"] else command.OK


def register(sub) -> None:
    """Add `ess export` to the CLI."""
    p = sub.add_parser("export", help="write daily per-site, per-type CSV files (backfills)")
    p.add_argument("--date", help="YYYY-MM-DD (default: yesterday in each site's time zone)")
    p.add_argument("--from", dest="date_from", metavar="D1", help="first day of a range")
    p.add_argument("--to", dest="date_to", metavar="D2", help="last day of a range (inclusive)")
    p.add_argument("--site", help="one site id (default: all)")
    p.add_argument("--dest", help="gs://BUCKET/PREFIX or a local directory "
                                  "(default: gs://$ESS_EXPORT_BUCKET/$ESS_EXPORT_PREFIX)")
    p.add_argument("--dsn", help="postgresql://... (default: ESS_DB_DSN or ESS_DB_INSTANCE)")
    command.add_config_option(p, "required")
    p.add_argument("--format", choices=("csv", "csv.gz", "parquet"),
                   help="file format (default: csv)")
    p.add_argument("--gzip", action="store_true", help="write .csv.gz files (= --format csv.gz)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--log-level", default="WARNING", help="structured log level on stderr")
    p.set_defaults(func=_cmd_export)
    from .migrate import register as register_migrate

    register_migrate(sub)
