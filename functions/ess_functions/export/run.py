"""Daily export: one file per site, day and type, streamed from PostgreSQL to storage.

Per site-day, one read-only repeatable-read transaction (one snapshot) in the site's time zone.
Per file: a first COPY pass only hashes the CSV; if the sha256 equals the stored object's, nothing
is written. Otherwise a second COPY pass (same snapshot, same bytes) streams into a resumable
upload guarded by `if_generation_match`, encoded as CSV, CSV.gz or Parquet, with the facts as
object metadata. Memory stays bounded by one copy block (one row group for Parquet) plus one
upload chunk, whatever the day's size. See docs/export.md.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

from ess.db.bigquery import export_specs
from ess.db.retention import retired_days
from ess.db.schema import TableSpec
from ess.logs import event
from ess.sites import Site, SitesConfig
from ess.status.report import export_day, settings
from ess.wire.transaction import transaction

from ..objstore import Conflict, ObjectStore, Stored
from .encode import DEFAULT_FORMAT, FORMATS, CsvStream, Format, copy
from .manifest import file_key, from_metadata, manifest_key, to_metadata, update_manifest
from .sql import SNAPSHOT, day_window, scope_snapshot, type_copy_sql

log = logging.getLogger("ess.export")
QUERY_TIMEOUT = 1800     # s of socket silence allowed (a COPY sorts before its first row)


@dataclass
class FileResult:
    """What happened to one file: `written`, `unchanged` or `conflict` (another run won)."""

    site: str
    type: str
    date: str
    key: str
    status: str
    rows: int
    bytes: int
    sha256: str
    duration_ms: int


def _site_maps(site: Site) -> list:
    seen = {}
    for d in site.devices:
        seen.setdefault(d.map.key, d.map)
    return list(seen.values())


def _known(stored: Stored | None, manifest_entry: dict | None) -> dict | None:
    """The facts of the stored object: its metadata, else a manifest entry of that generation."""
    if stored is None:
        return None
    entry = from_metadata(stored.metadata or {}, stored.size, stored.generation)
    if entry is None and manifest_entry and manifest_entry.get("generation") == stored.generation \
            and manifest_entry.get("bytes") == stored.size:
        entry = manifest_entry
    return entry


@dataclass(frozen=True)
class _DayRun:
    """One site-day being exported: its snapshot cursor, destination and shared file facts."""

    cur: object
    dest: ObjectStore
    site: Site
    day: date
    fmt: Format
    run_id: str
    base: dict   # the facts every file of the site-day shares (site, date, window, maps...)
    window: tuple[datetime, datetime]   # [start, end) of the local day


def export_site_day(conn, site: Site, day: date, dest: ObjectStore, *,
                    fmt: str = DEFAULT_FORMAT, manifest_files: dict | None = None,
                    on_file: Callable[[FileResult], None] | None = None
                    ) -> tuple[list[FileResult], dict[str, dict]]:
    """Export every type of one site-day; return the file results and their manifest entries."""
    start, end = day_window(day, site.tz)
    maps = _site_maps(site)
    form = FORMATS[fmt]
    base = {"site": site.site_id, "date": day.isoformat(),
            "day_start": start.isoformat(), "day_end": end.isoformat(),
            "time_zone": site.timezone, "maps": ",".join(f"{m.map_id}@{m.version}" for m in maps),
            "format": form.name, "compression": form.compression}
    results, entries = [], {}
    with transaction(conn, begin=SNAPSHOT) as cur:
        scope_snapshot(cur, site.site_id, site.timezone)
        run = _DayRun(cur, dest, site, day, form, uuid.uuid4().hex, base, (start, end))
        for table, spec in export_specs(maps).items():
            key = file_key(table, day.isoformat(), site.site_id, form.suffix)
            result, entry = _export_file(run, spec, key, (manifest_files or {}).get(key))
            if entry is not None:
                entries[key] = entry
            results.append(result)
            if on_file:
                on_file(result)
    return results, entries


def _export_file(run: _DayRun, spec: TableSpec, key: str,
                 manifest_entry: dict | None) -> tuple[FileResult, dict | None]:
    """Export one file of the site-day, unless its stored content is the same."""
    t0 = time.monotonic()
    stored = run.dest.stat(key)
    known = _known(stored, manifest_entry)
    base = {**run.base, "type": spec.name}
    if known is not None:  # first pass: hash only, to leave an unchanged file alone
        probe, rows = copy(run.cur, type_copy_sql(spec, *run.window))
        facts = _facts(probe, rows)
        if known.get("sha256") == facts["sha256"]:
            status, entry = "unchanged", known
        else:
            status, entry = _upload(run, spec, key, {**base, **facts}, stored)
    else:  # nothing to compare with: a single pass
        status, entry = _upload(run, spec, key, base, stored)
    entry_ = entry or {}
    result = FileResult(run.site.site_id, spec.name, run.day.isoformat(), key, status,
                        entry_.get("rows", 0), entry_.get("bytes", 0), entry_.get("sha256", ""),
                        int((time.monotonic() - t0) * 1000))
    event(log, f"export {key}: {status}", stage="accumulate",
          level=logging.WARNING if status == "conflict" else logging.INFO,
          **{k: v for k, v in asdict(result).items() if k != "key"}, object=key)
    return result, entry


def _facts(stream: CsvStream, rows: int) -> dict:
    first_ts, last_ts = stream.time_range()
    return {"sha256": stream.sha.hexdigest(), "rows": rows, "csv_bytes": stream.size,
            "first_ts": first_ts, "last_ts": last_ts,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds")}


def _upload(run: _DayRun, spec: TableSpec, key: str, entry: dict,
            stored: Stored | None) -> tuple[str, dict | None]:
    """Stream the snapshot into the destination under a generation precondition.

    With the hash known (second pass) the metadata goes with the upload; otherwise it is set
    right after, on exactly the generation this run wrote (`export_run` identifies it).
    """
    expected = entry.get("sha256")
    out: dict = {}

    def produce(f) -> None:
        stream, rows = copy(run.cur, type_copy_sql(spec, *run.window), f, run.fmt, spec)
        out.update(_facts(stream, rows))
        if expected and out["sha256"] != expected:
            raise RuntimeError(f"{key}: content changed between passes of one snapshot")

    content_type = run.fmt.content_type
    try:
        new = run.dest.upload(key, produce,
                              metadata={**to_metadata(entry), "export_run": run.run_id},
                              if_generation_match=stored.generation if stored else 0,
                              content_type=content_type, chunk_size=run.fmt.upload_chunk)
        if new.metadata is not None and new.metadata.get("export_run") != run.run_id:
            raise Conflict(f"{key} was replaced by another run")
        if not expected:
            entry = {**entry, **out}
            new = run.dest.set_metadata(key, new,
                                        {**to_metadata(entry), "export_run": run.run_id})
    except Conflict as exc:
        event(log, f"export {key}: {exc}", stage="accumulate", level=logging.WARNING,
              object=key, error=str(exc))
        return "conflict", None
    return "written", {**entry, "bytes": new.size, "generation": new.generation}


def _day_status(conn, site: Site, day: date, interval: float,
                frozen_after: float) -> dict[str, dict]:
    """Save the site-day's data status; log one line per bank (the status log metrics)."""
    status = export_day(conn, site, day, interval, frozen_after)
    for d in status.values():
        pct = round(d["completeness"] * 100, 4)
        event(log, f"data status {d['site_id']}/bank{d['bank_id']} {d['day']}: completeness "
              f"{pct}%, lost {d['lost']}, missed {d['missed']}, failed {d['failed_polls']}",
              stage="status", site=d["site_id"], bank=d["bank_id"], date=d["day"],
              completeness_pct=pct, expected=d["expected"],
              stored=d["stored"], lost=d["lost"], missed=d["missed"],
              failed=d["failed_polls"], frozen_s=d["frozen_s"])
    return status


def export_jobs(conn, jobs: Iterable[tuple[Site, date]], dest: ObjectStore, *,
                fmt: str = DEFAULT_FORMAT,
                on_file: Callable[[FileResult], None] | None = None,
                config: SitesConfig | None = None) -> dict:
    """Export site-days, then update each day's manifest once; return a JSON-able summary.
    The data status uses `config`'s collector interval and frozen_after (None: defaults)."""
    interval, frozen_after = settings(config)
    by_day: dict[date, list[Site]] = {}
    retired = []
    for site, day in jobs:
        if day in retired_days(conn, site.site_id, [day]):   # issue 23: files are the record
            retired.append({"site": site.site_id, "date": day.isoformat()})
            event(log, f"export {site.site_id} {day}: retired (its raw rows are dropped; the "
                  "files stay as they are)", stage="accumulate", level=logging.WARNING,
                  site=site.site_id, date=day.isoformat(), status="retired")
            continue
        by_day.setdefault(day, []).append(site)
    files, manifests = [], []
    for day in sorted(by_day):
        doc, _ = dest.read_json(manifest_key(day.isoformat()))
        known = (doc or {}).get("files", {})
        entries: dict[str, dict] = {}
        sections: dict[str, dict] = {}   # extra top-level manifest sections, by name
        for site in by_day[day]:
            res, ent = export_site_day(conn, site, day, dest, fmt=fmt, manifest_files=known,
                                       on_file=on_file)
            files += res
            entries.update(ent)
            sections.setdefault("data_status", {}).update(_day_status(conn, site, day, interval,
                                                                      frozen_after))
        written, count = update_manifest(dest, day.isoformat(), entries,
                                         datetime.now(UTC).isoformat(timespec="seconds"),
                                         sections=sections)
        manifests.append({"date": day.isoformat(), "key": manifest_key(day.isoformat()),
                          "written": written, "files": count})
        event(log, f"manifest {day}: {'written' if written else 'unchanged'}",
              stage="accumulate", date=day.isoformat(), files=count, written=written)
    return {"destination": dest.url, "files": [asdict(f) for f in files],
            "manifests": manifests,
            "written": sum(f.status == "written" for f in files),
            "unchanged": sum(f.status == "unchanged" for f in files),
            "conflicts": sum(f.status == "conflict" for f in files), "retired": retired}
