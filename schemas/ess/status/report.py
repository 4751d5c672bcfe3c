"""Daily data status per site, bank and local day, computed from the ledger (or read back from
`data_status` for days the export has already written)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..wire.times import iso
from ..wire.transaction import transaction
from . import sql

DEFAULT_FROZEN_AFTER = 300.0
_NAMED = re.compile(r"%\((\w+)\)s")
_IN_FLIGHT = timedelta(seconds=60)     # an ingest statement running when a day was saved
# A bank's last frame before the days asked for (what their first frame's seq is compared with)
# is looked for this far back: the collector's spool keeps frames a week, so a gap across a
# longer silence is not counted (the spool's drop is logged). The bound keeps the scan to a
# few days' partitions instead of every one since the first.
SEED_LOOKBACK = timedelta(days=8)
# `ess status`'s last poll of each bank is looked for in the last day, then the last week and
# month: each window a few partitions, not all of them. Older: "not seen".
LAST_WINDOWS = (timedelta(days=1), timedelta(days=8), timedelta(days=32))
SEEN_WINDOW = timedelta(days=2)     # the banks `ess status` lists without a sites config


@dataclass
class BankDay:
    """One bank's status for one local day; expected = stored + missed + lost."""

    site_id: str
    bank_id: int
    day: date
    timezone: str
    expected: int = 0
    stored: int = 0
    lost: int = 0
    resets: int = 0
    missed: int = 0
    failed_polls: int = 0
    failed: dict = field(default_factory=dict)     # "block:kind" -> polls
    out_of_range: int = 0
    first_poll: datetime | None = None
    last_poll: datetime | None = None
    max_lag_s: float | None = None
    frozen_s: int = 0

    @property
    def failed_by_kind(self) -> dict[str, int]:
        """Failed blocks by kind (timeout, exception:<code>, transport, skipped,
        mismatched_reply, bad_crc), summed over blocks."""
        return failed_by_kind(self.failed)

    @property
    def completeness(self) -> float:
        """Share of expected ticks with a stored frame (1.0 for a day with none expected)."""
        return min(1.0, self.stored / self.expected) if self.expected else 1.0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["completeness"] = round(self.completeness, 6)
        out["failed_by_kind"] = self.failed_by_kind
        for k in ("day", "first_poll", "last_poll"):
            out[k] = out[k].isoformat() if out[k] is not None else None
        return out


def failed_by_kind(failed: dict[str, int]) -> dict[str, int]:
    """`{"block:kind": n}` summed by kind (the part after the block's name)."""
    out: dict[str, int] = {}
    for what, n in failed.items():
        kind = what.split(":", 1)[1] if ":" in what else what
        out[kind] = out.get(kind, 0) + n
    return dict(sorted(out.items()))


def kinds_by_bank(days: list[BankDay]) -> dict[int, dict[str, int]]:
    """Failed blocks by kind per bank, summed over `days`."""
    out: dict[int, dict[str, int]] = {}
    for d in days:
        acc = out.setdefault(d.bank_id, {})
        for kind, n in d.failed_by_kind.items():
            acc[kind] = acc.get(kind, 0) + n
    return {bank: dict(sorted(k.items())) for bank, k in out.items()}


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """UTC start and end of a local day (23 or 25 hours long on DST changes)."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    return start, end


def expected_ticks(day: date, tz: str, interval: float, now: datetime | None = None) -> int:
    """Ticks (multiples of `interval` in Unix time) in the local day, up to `now` if earlier."""
    start, end = day_bounds(day, tz)
    if now is not None:
        end = max(start, min(end, now))
    return math.ceil(end.timestamp() / interval - 1e-9) - math.ceil(
        start.timestamp() / interval - 1e-9)


def settings(config) -> tuple[float, float]:
    """The collector's `interval` and `frozen_after` from a sites config (None: defaults)."""
    col = (config.raw.get("collector") if config is not None else None) or {}
    return (float(col.get("interval", 1.0)),
            float(col.get("frozen_after", DEFAULT_FROZEN_AFTER)))


def _params(site: str, tz: str, d0: date, d1: date, interval: float, frozen: float) -> dict:
    start, end = day_bounds(d0, tz)[0], day_bounds(d1, tz)[1]
    back = start - timedelta(seconds=frozen)
    return {"site": site, "tz": tz, "start": start, "end": end, "interval": interval,
            "frozen": frozen, "back": back, "seed_from": back - SEED_LOOKBACK}


def _query(conn, text: str, params: dict) -> list:
    names = _NAMED.findall(text)        # %(name)s -> %s (pg8000's style is module-wide)
    cur = conn.cursor()
    try:
        cur.execute(_NAMED.sub("%s", text), tuple(params[n] for n in names))
        return cur.fetchall()
    finally:
        cur.close()


def _scan(conn, site: str, tz: str, d0: date, d1: date, interval: float,
          frozen_after: float) -> tuple[dict[tuple[int, date], BankDay],
                                        dict[tuple[int, date], datetime], list[dict]]:
    """One pass over the ledger's local days d0..d1: the status of each bank and day with
    frames (failed blocks looked up only when some poll failed), its newest commit time, and
    the lost ranges and resets in poll order."""
    p = _params(site, tz, d0, d1, interval, frozen_after)
    found: dict[tuple[int, date], BankDay] = {}
    committed: dict[tuple[int, date], datetime] = {}
    gaps: list[dict] = []
    for (bank, day, stored, lost, resets, failed_polls, oor, first, last, lag,
         frozen, day_gaps, newest) in _query(conn, sql.DAYS, p):
        found[(bank, day)] = BankDay(site, bank, day, tz, 0, stored, lost, resets, 0,
                                     failed_polls, {}, oor, first, last, lag, frozen)
        committed[(bank, day)] = newest
        gaps += [_gap(site, bank, *g) for g in day_gaps or ()]
    if any(d.failed_polls for d in found.values()):
        for bank, day, what, n in _query(conn, sql.FAILED, p):
            found[(bank, day)].failed[what] = n
    return found, committed, gaps


def _gap(site: str, bank: int, lost: int, a: int, b: int, before: int, after: int) -> dict:
    item = {"site_id": site, "bank_id": bank, "kind": "lost" if lost else "reset",
            "after": iso(before), "before": iso(after)}
    item.update({"first_seq": a, "last_seq": b} if lost else {"from_seq": a, "to_seq": b})
    return item


def _live(found: dict, key: tuple[int, date], site: str, tz: str, interval: float,
          now: datetime) -> BankDay:
    """The bank-day computed from the ledger (all missed when it has no frames)."""
    bd = found.get(key) or BankDay(site, key[0], key[1], tz)
    bd.expected = expected_ticks(key[1], tz, interval, now)
    bd.missed = max(0, bd.expected - bd.stored - bd.lost)
    return bd


def status(conn, site: str, tz: str, banks: list[int], d0: date, d1: date,
           interval: float = 1.0, frozen_after: float = DEFAULT_FROZEN_AFTER,
           now: datetime | None = None, saved: bool = True) -> tuple[list[BankDay], list[dict]]:
    """Status of every bank (configured, seen or saved) for each local day d0..d1, and the
    lost ranges and resets, from the ledger in one pass. With `saved`, a past day the export
    wrote to `data_status` is read back from there unless the ledger got frames for it
    committed since (a minute's margin: a statement in flight then)."""
    now = now or datetime.now(UTC)
    today = now.astimezone(ZoneInfo(tz)).date()
    found, committed, gap_list = _scan(conn, site, tz, d0, d1, interval, frozen_after)
    kept = _stored(conn, site, d0, min(d1, today - timedelta(days=1))) if (
        saved and d0 < today) else {}
    out = []
    for bank in sorted(set(banks) | {b for b, _ in found} | {b for b, _ in kept}):
        day = d0
        while day <= d1:
            key = (bank, day)
            bd, computed = kept.get(key, (None, None))
            newest = committed.get(key)
            if bd is None or (newest is not None and newest > computed - _IN_FLIGHT):
                bd = _live(found, key, site, tz, interval, now)
            out.append(bd)
            day += timedelta(days=1)
    return out, gap_list


def compute(conn, site: str, tz: str, banks: list[int], d0: date, d1: date,
            interval: float = 1.0, frozen_after: float = DEFAULT_FROZEN_AFTER,
            now: datetime | None = None) -> list[BankDay]:
    """Status of every bank (configured or seen) for each local day d0..d1, from the ledger."""
    return status(conn, site, tz, banks, d0, d1, interval, frozen_after, now, False)[0]


def gaps(conn, site: str, tz: str, d0: date, d1: date) -> list[dict]:
    """Lost ranges (`first_seq`..`last_seq` missing) and resets (`from_seq` -> `to_seq`)."""
    return _scan(conn, site, tz, d0, d1, 1.0, 0.0)[2]


def _newest(conn, site: str, banks: list[int], now: datetime) -> dict[int, tuple]:
    """Per bank, its newest frame (ts, lag, seq, crc), in the last day, week or month; else
    the last poll of the newest day the export saved (ts only)."""
    found: dict[int, tuple] = {}
    for window in LAST_WINDOWS:
        todo = [b for b in banks if b not in found]
        if not todo:
            return found
        for bank, ts, lag, seq, crc in _query(conn, sql.LAST, {"site": site, "banks": todo,
                                                               "since": now - window}):
            found[bank] = (ts, lag, seq, crc)
    todo = [b for b in banks if b not in found]
    if todo and _query(conn, "SELECT to_regclass('data_status') IS NOT NULL", {})[0][0]:
        for bank, ts in _query(conn, sql.LAST_SAVED, {"site": site, "banks": todo}):
            found[bank] = (ts, None, None, None)
    return found


def last_seen(conn, site: str, banks: list[int], now: datetime,
              frozen_after: float = DEFAULT_FROZEN_AFTER) -> list[dict]:
    """Per bank: newest poll, its age and lag, seq, and whether the bank is frozen now."""
    newest = _newest(conn, site, banks, now)
    out = []
    for bank in sorted(banks):
        ts, lag, seq, crc = newest.get(bank, (None, None, None, None))
        run_start = None
        if crc is not None:
            run_start = _query(conn, sql.RUN_START, {"site": site, "bank": bank, "ts": ts,
                                                     "crc": crc,
                                                     "day_before": ts - timedelta(days=1)})[0][0]
        frozen = bool(ts and run_start and (ts - run_start).total_seconds() >= frozen_after)
        out.append({"site_id": site, "bank_id": bank, "last_poll": ts.isoformat() if ts else None,
                    "age_s": round((now - ts).total_seconds(), 1) if ts else None,
                    "lag_s": round(lag, 3) if lag is not None else None, "seq": seq,
                    "frozen": frozen,
                    "frozen_s": round((ts - run_start).total_seconds()) if frozen else 0})
    return out


def _stored(conn, site: str, d0: date, d1: date) -> dict[tuple[int, date],
                                                        tuple[BankDay, datetime]]:
    """Rows the export wrote to `data_status` for the site and days, and when."""
    rows = _query(conn, sql.STORED, {"site": site, "d0": d0.isoformat(), "d1": d1.isoformat()})
    out = {}
    for (bank, day, expected, stored, lost, resets, failed_polls, failed, oor, first, last,
         lag, frozen, computed) in rows:
        bd = BankDay(site, bank, day, "", expected, stored, lost, resets, 0, failed_polls,
                     failed if isinstance(failed, dict) else json.loads(failed or "{}"),
                     oor, first, last, lag, frozen)
        bd.missed = max(0, expected - stored - lost)
        out[(bank, day)] = (bd, computed)
    return out


def stored_days(conn, site: str, d0: date, d1: date) -> dict[tuple[int, date], BankDay]:
    """Rows the export wrote to `data_status` for the site and days."""
    return {k: bd for k, (bd, _) in _stored(conn, site, d0, d1).items()}


def save(conn, days: list[BankDay]) -> int:
    """Write (or replace) `data_status` rows; return how many."""
    with transaction(conn) as cur:
        for d in days:
            cur.execute(sql.UPSERT, (d.day, d.site_id, d.bank_id, d.timezone, d.expected,
                                     d.stored, d.completeness, d.lost, d.resets, d.missed,
                                     d.failed_polls, json.dumps(d.failed), d.out_of_range,
                                     d.first_poll, d.last_poll, d.max_lag_s, d.frozen_s))
    return len(days)


def export_day(conn, site, day: date, interval: float = 1.0,
               frozen_after: float = DEFAULT_FROZEN_AFTER) -> dict:
    """The daily export's hook: compute a site's local day, save it into `data_status` and
    return the manifest's `data_status` entries (`site/bankN` -> status); {} without a ledger."""
    if not _query(conn, "SELECT to_regclass('frames') IS NOT NULL", {})[0][0]:
        return {}
    days = compute(conn, site.site_id, site.timezone, sorted(d.bank_id for d in site.devices),
                   day, day, interval, frozen_after)
    save(conn, days)
    return {f"{d.site_id}/bank{d.bank_id}": d.as_dict() for d in days}
