"""HTTP handling of the export function: parse, validate (400 before any write), run, report."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid

from ess.db.connect import connect
from ess.logs import event
from ess.sites import ConfigError, SitesConfig, load_sites

from ..objstore import DestinationError, GcsStore
from .dates import check_first_days
from .request import BadRequest, parse_date, parse_format, plan_jobs
from .run import QUERY_TIMEOUT, export_jobs
from .tasks import parse_task, run_task

log = logging.getLogger("ess.export")
_lock = threading.Lock()
_cache: dict[str, object] = {}
_TRUE = {"1", "true", "yes", "on"}


def sites_config() -> SitesConfig:
    """The sites configuration, loaded once per process and path."""
    # e.g. ESS_SITES_CONFIG=gs://my-project-ess-config/sites.yaml
    path = os.environ.get("ESS_SITES_CONFIG")
    if not path:
        raise ConfigError("ESS_SITES_CONFIG", ["not set"])
    with _lock:
        if _cache.get("sites_path") != path:
            _cache["sites"], _cache["sites_path"] = load_sites(path), path
        return _cache["sites"]  # type: ignore[return-value]


def destination() -> GcsStore:
    """The bucket (and optional prefix) from the environment."""
    # e.g. ESS_EXPORT_BUCKET=my-project-ess-csv
    bucket = os.environ.get("ESS_EXPORT_BUCKET", "").strip()
    if not bucket:
        raise BadRequest("no export bucket: ESS_EXPORT_BUCKET is not set")
    # e.g. ESS_EXPORT_PREFIX=daily (objects go under gs://BUCKET/daily/type=...)
    return GcsStore(bucket, os.environ.get("ESS_EXPORT_PREFIX", ""))


def _params(request) -> dict:
    data = request.get_data()
    try:
        body = json.loads(data) if data else {}
    except (ValueError, RecursionError):    # RecursionError: JSON nested thousands deep
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return {**request.args.to_dict(), **body}


def _plan(params: dict) -> tuple[list, GcsStore, str]:
    """The checked jobs, destination and format of a request; BadRequest when unusable."""
    days = [parse_date(params["date"])] if params.get("date") not in (None, "") else None
    dest = destination()
    jobs = plan_jobs(sites_config(), days=days, site=params.get("site"))
    fmt = parse_format(params.get("format"), str(params.get("gzip", "")).lower() in _TRUE)
    try:
        dest.check()
    except DestinationError as exc:
        raise BadRequest(str(exc)) from exc
    return jobs, dest, fmt


# The stage of a task's lines (its failures too, so an alert on one task never counts another's).
STAGES = {"export": "accumulate", "rollup": "rollup", "retention": "retention"}


def _refused(exc: BadRequest, task: str = "export"):
    event(log, f"{task} refused: {exc}", stage=STAGES[task], level=logging.WARNING,
          error=str(exc))
    return {"error": str(exc)}, 400


def _internal(exc: Exception, task: str = "export"):
    """A generic 500: the details (DSNs, hosts, ports) go to the log only, under an error id."""
    error_id = uuid.uuid4().hex[:16]
    event(log, f"{task} failed: {exc}", stage=STAGES[task], level=logging.ERROR,
          error=repr(exc), error_id=error_id)
    return {"error": f"{task} failed: internal error (error_id {error_id} in the log)",
            "error_id": error_id}, 500


def _task(task: str, params: dict):
    """A `rollup` or `retention` request (ess_functions.export.tasks)."""
    try:
        fmt = parse_format(params.get("format"), str(params.get("gzip", "")).lower() in _TRUE)
        dest = destination() if task == "retention" else None
        config = sites_config()
    except BadRequest as exc:
        return _refused(exc, task)
    except Exception as exc:  # noqa: BLE001 - a bad configuration, the bucket unreachable
        return _internal(exc, task)
    return _with_database(lambda conn: run_task(task, conn, config, dest, fmt), task)


def _with_database(work, task: str = "export"):
    """`work(conn)`'s summary with 200, on a connection closed afterwards; 400 or 500 on error."""
    conn = None
    try:
        conn = connect(read_timeout=QUERY_TIMEOUT)
        return work(conn), 200
    except BadRequest as exc:
        return _refused(exc, task)
    except Exception as exc:  # noqa: BLE001 - never echoed: it may name the DSN or a host
        return _internal(exc, task)
    finally:
        if conn is not None:
            conn.close()


def handle(request):
    """Export one day (`date`, default yesterday per site) for all sites or one `site`, as
    `format` csv (default), csv.gz or parquet; or run another `task` (rollup, retention)."""
    try:
        params = _params(request)
        task = parse_task(params.get("task"))
        if task != "export":
            return _task(task, params)
        jobs, dest, fmt = _plan(params)
    except BadRequest as exc:
        return _refused(exc)
    except ConfigError as exc:
        event(log, f"export: bad configuration: {exc}", stage="accumulate", level=logging.ERROR,
              error=str(exc))
        return {"error": str(exc)}, 500
    except Exception as exc:  # noqa: BLE001 - e.g. the bucket unreachable
        return _internal(exc)

    def export(conn) -> dict:
        check_first_days(conn, sites_config(), jobs)
        return export_jobs(conn, jobs, dest, fmt=fmt, config=sites_config())

    return _with_database(export)
