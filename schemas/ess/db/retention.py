"""Retention tiers: raw rows for `raw_days`, 1-minute rollups for `minute_rollup_days`, 1-hour
rollups for `hour_rollup_days` (None: forever); every day in Cloud Storage forever (the export).

`retire` drops the raw slices (daily partitions or chunks, every raw table at once) that ended
more than `raw_days` ago, each only when the export wrote that range's site-local days with the
row counts the database holds (`ess_retire_raw`, ess.db.retention_sql). What the export wrote
is an input, `exported(site, day) -> {table: rows} | None` (None: no manifest), so this module
knows nothing of buckets. `prune_rollups` deletes rollup rows past their tier.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from ..errors import PermanentError
from ..wire.transaction import reading, transaction
from . import pg
from .quote import ident
from .retention_sql import MIN_RAW_DAYS
from .rollup_schema import rollup_specs

Exported = Callable[[str, date], "Mapping[str, int] | None"]
ENV = {"raw_days": "ESS_RETENTION_RAW_DAYS", "minute_rollup_days": "ESS_RETENTION_MINUTE_DAYS",
       "hour_rollup_days": "ESS_RETENTION_HOUR_DAYS"}
PRUNE_BATCH = 50_000


class RetentionConfigError(PermanentError):
    """The retention settings are invalid."""

    reason = "bad_config"


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each tier stays in the database (None: forever)."""

    raw_days: int = 30
    minute_rollup_days: int | None = 730
    hour_rollup_days: int | None = None

    def __post_init__(self):
        if not isinstance(self.raw_days, int) or self.raw_days < MIN_RAW_DAYS:
            raise RetentionConfigError(f"raw_days must be an integer >= {MIN_RAW_DAYS} (the "
                                       f"export re-runs recent days), got {self.raw_days!r}")
        floor = self.raw_days
        for name in ("minute_rollup_days", "hour_rollup_days"):
            v = getattr(self, name)
            if v is None:
                floor = None
                continue
            if not isinstance(v, int) or floor is None or v < floor:
                raise RetentionConfigError(
                    f"{name} must be an integer >= {floor or 'the tier above (forever)'}, "
                    f"or null (forever), got {v!r}")
            floor = v


def policy_from(raw: Mapping | None, env: Mapping[str, str] | None = None) -> RetentionPolicy:
    """The policy from a sites config document's `retention` section, each value overridden by
    its environment variable (`ESS_RETENTION_*`; `forever`, `0` or empty for None)."""
    env = os.environ if env is None else env
    values = dict((raw or {}).get("retention") or {})
    for key, var in ENV.items():
        text = env.get(var)
        if text is None:
            continue
        text = text.strip().lower()
        try:
            values[key] = None if text in ("", "forever", "null", "0") else int(text)
        except ValueError:
            raise RetentionConfigError(f"{var}={text!r} is not a whole number of days") from None
    return RetentionPolicy(**values)


def local_days(lo: datetime, hi: datetime, tz: str) -> list[date]:
    """The local days of zone `tz` that overlap [lo, hi)."""
    zone = ZoneInfo(tz)
    first, last = lo.astimezone(zone).date(), (hi - timedelta(microseconds=1)).astimezone(zone)
    return [first + timedelta(days=k) for k in range((last.date() - first).days + 1)]


def raw_ranges(conn, before: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) of every raw slice that ends by `before`, oldest first, once each."""
    with reading(conn) as cur:
        cur.execute("SELECT DISTINCT range_start, range_end FROM "
                    "ess_raw_slices('-infinity', %s) ORDER BY 1, 2", (before,))
        return [(r[0], r[1]) for r in cur.fetchall()]


def retired_days(conn, site_id: str, days: Iterable[date]) -> set[date]:
    """The site's local days among `days` that retention has dropped rows of (their files are
    the only whole copy: the export must not rewrite them from what is left)."""
    with reading(conn) as cur:
        cur.execute("SELECT to_regclass('ess_retired') IS NOT NULL")
        if not cur.fetchone()[0]:
            return set()
        cur.execute("SELECT DISTINCT day FROM ess_retired WHERE site_id = %s "
                    "AND day = ANY(%s::date[]) AND dropped > 0",
                    (site_id, [d.isoformat() for d in days]))
        return {r[0] for r in cur.fetchall()}


def expected_counts(zones: Mapping[str, str], exported: Exported, lo: datetime,
                    hi: datetime) -> dict:
    """{site: {day: {table: rows}}} for the site-local days overlapping [lo, hi) that have a
    manifest."""
    out: dict = {}
    for site, tz in zones.items():
        for day in local_days(lo, hi, tz):
            counts = exported(site, day)
            if counts is not None:
                out.setdefault(site, {})[day.isoformat()] = dict(counts)
    return out


def retire_range(conn, lo: datetime, hi: datetime, zones: Mapping[str, str],
                 expected: dict) -> dict:
    """Drop the raw slices of [lo, hi) if the database matches `expected` (one transaction);
    the function's answer, or {"dropped": False, "reason": "busy"} on a lock timeout."""
    try:
        with transaction(conn, begin="BEGIN") as cur:
            cur.execute("SELECT ess_retire_raw(%s, %s, %s::jsonb, %s::jsonb)",
                        (lo, hi, json.dumps(dict(zones)), json.dumps(expected)))
            (answer,) = cur.fetchone()
    except pg.DatabaseError as exc:
        if pg.sqlstate(exc) != "55P03":     # lock_not_available: a slice stayed in use
            raise
        answer = {"dropped": False, "reason": "busy"}
    answer = json.loads(answer) if isinstance(answer, str) else answer
    return {"start": lo.isoformat(), "end": hi.isoformat(), **answer}


def retire(conn, zones: Mapping[str, str], exported: Exported, raw_days: int,
           now: datetime | None = None) -> list[dict]:
    """Retire every raw range that ended more than `raw_days` ago; one result per range.

    `zones` maps each configured site to its time zone (a site's days are local days)."""
    now = now or datetime.now(UTC)
    out = []
    for lo, hi in raw_ranges(conn, now - timedelta(days=raw_days)):
        out.append(retire_range(conn, lo, hi, zones,
                                expected_counts(zones, exported, lo, hi)))
    return out


def prune_rollups(conn, maps, banks: Iterable[tuple[str, int]], policy: RetentionPolicy,
                  now: datetime | None = None) -> dict[str, int]:
    """Delete rollup rows older than their tier, bank by bank (the primary key's range), in
    batches; {table: rows deleted}."""
    now = now or datetime.now(UTC)
    days = {"1m": policy.minute_rollup_days, "1h": policy.hour_rollup_days}
    deleted: dict[str, int] = {}
    for name, spec in sorted(rollup_specs(list(maps)).items()):
        if days[spec.level] is None:
            continue
        before = now - timedelta(days=days[spec.level])
        t = ident(name)
        sql = (f"DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} "
               f"WHERE site_id = %s AND bank_id = %s AND bucket < %s LIMIT {PRUNE_BATCH}))")
        for site, bank in banks:
            n = PRUNE_BATCH
            while n == PRUNE_BATCH:
                with transaction(conn, begin="BEGIN") as cur:
                    cur.execute(sql, (site, bank, before))
                    n = cur.rowcount
                deleted[name] = deleted.get(name, 0) + n
    return deleted
