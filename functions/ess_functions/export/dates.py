"""Which days the export accepts: from the first day to today, in each site's time zone.

The first day is `export.first_date` of the sites config. Without it, a day is accepted when it
is yesterday or today, on or after the first day the export saved (`data_status`, any site),
when the ledger (or a data table keyed by bank) has rows of a configured site in that local day,
or when an earlier day of the same request has. So a typo such as 1999 writes no empty files,
and no lookup reads more than the day asked for: every query is bounded by the day's own times,
which the planner prunes partitions and chunks by (the former "earliest row of all time" probe
opened every partition: thousands after a few years).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ess.db.quote import ident
from ess.db.schema import DATA_STATUS, LEDGER, table_specs
from ess.sites import ConfigError, Site, SitesConfig
from ess.wire.transaction import reading

from .request import BadRequest
from .sql import day_window


def configured_first_date(config: SitesConfig) -> date | None:
    """`export.first_date` of the sites config (validated by the schema), or None."""
    text = ((config.raw or {}).get("export") or {}).get("first_date")
    try:
        return date.fromisoformat(text) if text else None
    except ValueError as exc:
        raise ConfigError(config.source, [f"export.first_date: {exc}"]) from None


def _probe_tables(config: SitesConfig) -> list[str]:
    """The ledger and every data table keyed by (ts, site_id, bank_id) alone (rows stored
    before the ledger existed have no ledger row)."""
    specs = table_specs(list(config.maps().values()))
    return [LEDGER.name] + [n for n, s in specs.items() if s.key_names == LEDGER.key_names]


def exported_first_day(conn) -> date | None:
    """The first day the export saved a data status for (any site), or None."""
    with reading(conn) as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (DATA_STATUS.name,))
        if not cur.fetchone()[0]:
            return None
        cur.execute(f"SELECT min(day) FROM {ident(DATA_STATUS.name)}")
        return cur.fetchone()[0]


def has_rows(conn, config: SitesConfig, site: Site, day: date) -> bool:
    """Whether the ledger (or a bank-keyed data table) has rows of a configured site in the
    site's local `day`: one probe per table, bounded by the day (pruned to its partitions)."""
    start, end = day_window(day, site.tz)
    sites = sorted(config.site_ids)
    probes = [f"SELECT EXISTS (SELECT 1 FROM {ident(name)} t WHERE t.site_id = ANY(%s) "
              f"AND t.ts >= %s AND t.ts < %s)" for name in _probe_tables(config)]
    with reading(conn) as cur:
        cur.execute("SELECT " + " OR ".join(f"({p})" for p in probes),
                    [v for _ in probes for v in (sites, start, end)])
        return bool(cur.fetchone()[0])


def check_first_days(conn, config: SitesConfig, jobs: list[tuple[Site, date]], *,
                     now: datetime | None = None) -> None:
    """BadRequest when a job's day is before its site's first day (see the module docstring)."""
    now = now or datetime.now(UTC)
    configured = configured_first_date(config)
    exported: list[date | None] = []
    found: dict[str, date] = {}           # per site, the first day of the request with rows
    for site, day in sorted(jobs, key=lambda j: j[1]):
        if configured is not None:
            if day < configured:
                raise BadRequest(f"date {day} is before the first day {configured} of site "
                                 f"{site.site_id!r} (export.first_date)")
            continue
        if day >= now.astimezone(site.tz).date() - timedelta(days=1) or (
                site.site_id in found and day >= found[site.site_id]):
            continue
        if not exported:
            exported.append(exported_first_day(conn))
        if (exported[0] is not None and day >= exported[0]) or has_rows(conn, config, site,
                                                                        day):
            found.setdefault(site.site_id, day)
            continue
        origin = (f"the first day exported is {exported[0]}" if exported[0] is not None
                  else "no day exported yet")
        raise BadRequest(f"date {day} is before the first day of site {site.site_id!r} "
                         f"({origin}, and no frames are stored that day; set "
                         "export.first_date to export earlier days)")
