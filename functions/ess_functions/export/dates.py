"""Which days the export accepts: from the first day to today, in each site's time zone.

The first day is `export.first_date` of the sites config, else the local day of the earliest row
stored for any configured bank (one index probe per bank and table). An empty database has no
past: only yesterday and today. This keeps a typo such as 1999 from writing empty files.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ess.db.quote import ident
from ess.db.schema import LEDGER, table_specs
from ess.sites import ConfigError, Site, SitesConfig
from ess.wire.transaction import reading

from .request import BadRequest


def configured_first_date(config: SitesConfig) -> date | None:
    """`export.first_date` of the sites config (validated by the schema), or None."""
    text = ((config.raw or {}).get("export") or {}).get("first_date")
    try:
        return date.fromisoformat(text) if text else None
    except ValueError as exc:
        raise ConfigError(config.source, [f"export.first_date: {exc}"]) from None


def _probe_tables(config: SitesConfig) -> list[str]:
    """The ledger and every data table keyed by (ts, site_id, bank_id) alone: their primary
    key (site_id, bank_id, ts) gives each bank's first row in one index probe."""
    specs = table_specs(list(config.maps().values()))
    return [LEDGER.name] + [n for n, s in specs.items() if s.key_names == LEDGER.key_names]


def earliest_row(conn, config: SitesConfig) -> datetime | None:
    """The time of the earliest row of any configured bank, or None when there is none."""
    banks = [(d.site_id, d.bank_id) for d in config.devices()]
    probes = [f"SELECT (SELECT t.ts FROM {ident(name)} t WHERE t.site_id = d.s "
              f"AND t.bank_id = d.b ORDER BY t.ts LIMIT 1) AS ts "
              f"FROM unnest(CAST(%s AS text[]), CAST(%s AS smallint[])) AS d(s, b)"
              for name in _probe_tables(config)]
    sql = "SELECT min(ts) FROM (" + " UNION ALL ".join(probes) + ") x"
    params = []
    for _ in probes:
        params += [[s for s, _ in banks], [b for _, b in banks]]
    with reading(conn) as cur:
        cur.execute(sql, params)
        (first,) = cur.fetchone()
    return first


def first_day(site: Site, configured: date | None, earliest: datetime | None,
              now: datetime) -> date:
    """The first day the export accepts for the site."""
    if configured is not None:
        return configured
    if earliest is None:
        return now.astimezone(site.tz).date() - timedelta(days=1)
    return earliest.astimezone(site.tz).date()


def check_first_days(conn, config: SitesConfig, jobs: list[tuple[Site, date]], *,
                     now: datetime | None = None) -> None:
    """BadRequest when a job's day is before its site's first day (see the module docstring)."""
    now = now or datetime.now(UTC)
    configured = configured_first_date(config)
    earliest = None if configured else earliest_row(conn, config)
    for site, day in jobs:
        first = first_day(site, configured, earliest, now)
        if day < first:
            origin = ("export.first_date" if configured else
                      "the earliest stored row" if earliest else "no rows stored yet")
            raise BadRequest(f"date {day} is before the first day {first} of site "
                             f"{site.site_id!r} ({origin})")
