"""What an export request may ask, shared by the HTTP function and the CLI: dates, format, sites.

A request names no site (all) or a configured one, a YYYY-MM-DD date (default: yesterday in each
site's time zone, never a future day) or a range, and a format. Anything else is a BadRequest
(HTTP 400, exit 2) before anything is read or written.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from ess.errors import PermanentError
from ess.sites import Site, SitesConfig

from .encode import DEFAULT_FORMAT, FORMATS

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BadRequest(PermanentError):
    """The request names an unknown site, an invalid or future date, or no usable destination."""

    reason = "bad_request"


def parse_date(text: object) -> date:
    """A YYYY-MM-DD date, else BadRequest."""
    if not isinstance(text, str) or not _DATE.fullmatch(text):
        raise BadRequest(f"invalid date {text!r}: expected YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest(f"invalid date {text!r}: {exc}") from exc


def parse_format(fmt: object = None, gzip: object = False) -> str:
    """`csv`, `csv.gz` or `parquet` (default csv; the older `gzip` flag means csv.gz)."""
    if fmt in (None, ""):
        return "csv.gz" if gzip else DEFAULT_FORMAT
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise BadRequest(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if gzip and fmt != "csv.gz":
        raise BadRequest(f"gzip goes with format csv.gz, not {fmt!r}")
    return str(fmt)


def select_sites(config: SitesConfig, site: object = None) -> list[Site]:
    """All sites, or the one named; BadRequest for an unknown one."""
    if site in (None, ""):
        return list(config.sites)
    try:
        return [config.site(str(site))]
    except KeyError:
        raise BadRequest(f"unknown site {site!r}; known: "
                         f"{', '.join(s.site_id for s in config.sites)}") from None


def plan_jobs(config: SitesConfig, *, days: list[date] | None = None, site: object = None,
              now: datetime | None = None) -> list[tuple[Site, date]]:
    """(site, day) pairs; without days, yesterday in each site's zone. Refuses future days."""
    now = now or datetime.now(UTC)
    jobs = []
    for s in select_sites(config, site):
        today = now.astimezone(s.tz).date()
        for d in days or [today - timedelta(days=1)]:
            if d > today:
                raise BadRequest(f"date {d} is in the future for site {s.site_id!r} "
                                 f"({s.timezone}: today is {today})")
            jobs.append((s, d))
    return jobs


def date_range(first: date, last: date, limit: int = 3660) -> list[date]:
    """Every day from first to last inclusive."""
    if last < first:
        raise BadRequest(f"--to {last} is before --from {first}")
    n = (last - first).days + 1
    if n > limit:
        raise BadRequest(f"range of {n} days is longer than {limit}")
    return [first + timedelta(days=i) for i in range(n)]
