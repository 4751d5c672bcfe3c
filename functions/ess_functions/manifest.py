"""Per-day manifests (`date=YYYY-MM-DD/manifest.json`) and the per-file metadata behind them.

Each CSV object carries its own facts as custom metadata (all strings), written with the object
in the same request; the manifest gathers them per day, keyed by the file's path under the day.
"""

from __future__ import annotations

from .objstore import Conflict, ObjectStore

MANIFEST_VERSION = 1
_INT_FIELDS = ("rows", "csv_bytes")
_META_FIELDS = ("site", "type", "date", "sha256", "rows", "csv_bytes", "first_ts", "last_ts",
                "day_start", "day_end", "time_zone", "maps", "compression", "exported_at")


def day_folder(day: str) -> str:
    return f"date={day}"


def manifest_key(day: str) -> str:
    return f"{day_folder(day)}/manifest.json"


def file_name(table: str, site_id: str, gzip: bool) -> str:
    """Path of a file under its day's folder, e.g. `type=bank/site=site-a.csv`."""
    return f"type={table}/site={site_id}.csv" + (".gz" if gzip else "")


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
                    attempts: int = 5) -> tuple[bool, int]:
    """Merge `entries` into the day's manifest; write it only if a file entry changed.

    Read-modify-write under a generation precondition, retried when another run won the race.
    Returns (written, file count).
    """
    for _ in range(attempts):
        doc, generation = dest.read_json(manifest_key(day))
        files = dict((doc or {}).get("files", {}))
        merged = {**files, **entries}
        if doc is not None and merged == files:
            return False, len(files)
        new = {"manifest_version": MANIFEST_VERSION, "date": day, "generated_at": now,
               "files": dict(sorted(merged.items())),
               "total_rows": sum(e.get("rows", 0) for e in merged.values())}
        try:
            dest.write_json(manifest_key(day), new, generation)
            return True, len(merged)
        except Conflict:
            continue
    raise Conflict(f"manifest for {day} kept changing; gave up after {attempts} attempts")
