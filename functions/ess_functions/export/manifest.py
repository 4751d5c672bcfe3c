"""Export layout, per-day manifests and the per-file metadata behind them.

Files: `type=T/date=YYYY-MM-DD/site=S.csv` (`.csv.gz`, `.parquet`): one folder per type, so
each type is one table (BigQuery external table, DuckDB `read_*`) partitioned on `date`.
Manifests: `_manifests/date=YYYY-MM-DD/manifest.json`, outside every table's folder. Each file
carries its own facts as custom metadata (all strings), written with the object in the same
request; the manifest gathers them per day, keyed by the file's key under the prefix. Other
modules may add top-level sections to a manifest (`update_manifest(..., sections=...)`).
"""

from __future__ import annotations

from ..objstore import Conflict, ObjectStore

MANIFEST_VERSION = 1
_INT_FIELDS = ("rows", "csv_bytes")
_META_FIELDS = ("site", "type", "date", "sha256", "rows", "csv_bytes", "first_ts", "last_ts",
                "day_start", "day_end", "time_zone", "maps", "format", "compression",
                "exported_at")
MANIFESTS = "_manifests"


def manifest_key(day: str) -> str:
    """e.g. `_manifests/date=2026-11-25/manifest.json`."""
    return f"{MANIFESTS}/date={day}/manifest.json"


def file_key(table: str, day: str, site_id: str, suffix: str = ".csv") -> str:
    """Key of one file under the prefix, e.g. `type=bank/date=2026-11-25/site=site-a.csv`."""
    return f"type={table}/date={day}/site={site_id}{suffix}"


def to_metadata(entry: dict) -> dict[str, str]:
    """Object metadata (strings) from a manifest entry."""
    return {k: "" if entry.get(k) is None else str(entry[k]) for k in _META_FIELDS}


def from_metadata(meta: dict[str, str], size: int, generation: int) -> dict | None:
    """A manifest entry from object metadata, or None when the object has none of ours."""
    if not meta or not meta.get("sha256"):
        return None
    entry: dict = {k: (meta.get(k) or None) for k in _META_FIELDS}
    for k in _INT_FIELDS:
        entry[k] = int(meta.get(k) or 0)
    entry.update(bytes=size, generation=generation)
    return entry


def update_manifest(dest: ObjectStore, day: str, entries: dict[str, dict], now: str,
                    attempts: int = 5, sections: dict[str, dict] | None = None
                    ) -> tuple[bool, int]:
    """Merge `entries` (and extra top-level `sections`) into the day's manifest.

    Written only if something changed; read-modify-write under a generation precondition,
    retried when another run won the race. Returns (written, file count).
    """
    for _ in range(attempts):
        doc, generation = dest.read_json(manifest_key(day))
        files = dict((doc or {}).get("files", {}))
        merged = {**files, **entries}
        extra = {k: {**(doc or {}).get(k, {}), **v} for k, v in (sections or {}).items()}
        if doc is not None and merged == files and all(doc.get(k) == v for k, v in extra.items()):
            return False, len(files)
        new = {**(doc or {}), **extra,
               "manifest_version": MANIFEST_VERSION, "date": day, "generated_at": now,
               "files": dict(sorted(merged.items())),
               "total_rows": sum(e.get("rows", 0) for e in merged.values())}
        try:
            dest.write_json(manifest_key(day), new, generation)
            return True, len(merged)
        except Conflict:
            continue
    raise Conflict(f"manifest for {day} kept changing; gave up after {attempts} attempts")
