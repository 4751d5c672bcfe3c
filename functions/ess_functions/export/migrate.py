"""`ess export-migrate`: move an export written date-first into the type-first layout.

Old: `date=D/type=T/site=S.csv[.gz]` and `date=D/manifest.json`.
New: `type=T/date=D/site=S.csv[.gz]` and `_manifests/date=D/manifest.json` (docs/export.md).
Each file is copied to its new key only if that key is absent, then the old object is deleted
(in a directory: a hard link and an unlink, so mtime and metadata stay). Each day's manifest is
rewritten with the new keys (merged into a new-layout manifest of that day, if one exists) and
the old one deleted. Re-running finds nothing left to move.
"""

from __future__ import annotations

import argparse
import re

from ..objstore import Conflict, ObjectStore
from .manifest import file_key, manifest_key

_OLD_FILE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})/type=([^/]+)/site=([^/.]+)(\.[^/]+)$")
_OLD_MANIFEST = re.compile(r"^date=(\d{4}-\d{2}-\d{2})/manifest\.json$")


def plan_moves(keys: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(old key, new key) of every data file in the old layout, and the days of old manifests."""
    moves, days = [], []
    for key in keys:
        if m := _OLD_FILE.fullmatch(key):
            day, table, site, suffix = m.groups()
            moves.append((key, file_key(table, day, site, suffix)))
        elif m := _OLD_MANIFEST.fullmatch(key):
            days.append(m.group(1))
    return moves, days


def _move_manifest(dest: ObjectStore, day: str, moved: dict[str, int]) -> None:
    """Rewrite the day's old manifest under its new key with new file keys, then delete it."""
    old_key = f"date={day}/manifest.json"
    doc, old_gen = dest.read_json(old_key)
    files = {}
    for name, entry in (doc or {}).get("files", {}).items():
        new = f"{name.split('/', 1)[0]}/date={day}/{name.split('/', 1)[1]}"
        files[new] = {**entry, "generation": moved.get(new, entry.get("generation"))}
    current, gen = dest.read_json(manifest_key(day))
    merged = {**files, **(current or {}).get("files", {})}  # a new-layout export wins
    new_doc = {**(doc or {}), **(current or {}), "files": dict(sorted(merged.items())),
               "total_rows": sum(e.get("rows", 0) for e in merged.values())}
    dest.write_json(manifest_key(day), new_doc, gen)
    dest.delete(old_key, old_gen)


def migrate_layout(dest: ObjectStore, *, dry_run: bool = False, say=print) -> dict:
    """Move every old-layout file and manifest of `dest`; return counts."""
    moves, days = plan_moves(dest.list())
    done = {"moved": 0, "kept": 0, "manifests": 0}
    moved: dict[str, int] = {}
    for old, new in moves:
        say(f"{'would move' if dry_run else 'move'} {old} -> {new}")
        if dry_run:
            continue
        try:
            moved[new] = dest.move(old, new).generation
            done["moved"] += 1
        except Conflict:
            say(f"kept {old}: {new} exists already (written in the new layout)")
            done["kept"] += 1
    for day in days:
        say(f"{'would move' if dry_run else 'move'} date={day}/manifest.json -> "
            f"{manifest_key(day)}")
        if not dry_run:
            _move_manifest(dest, day, moved)
            done["manifests"] += 1
    return done


def _cmd_migrate(args: argparse.Namespace) -> int:
    """A bad destination (exit 2) or a store error (3) is told by ess.command; 1 when a file
    was kept because its new key was taken."""
    from ..objstore import open_store

    dest = open_store(args.dest)
    dest.check()
    done = migrate_layout(dest, dry_run=args.dry_run)
    if not args.dry_run:
        print(f"ess export-migrate: {done['moved']} moved, {done['kept']} kept, "
              f"{done['manifests']} manifest(s) -> {dest.url}")
    return 1 if done["kept"] else 0


def register(sub) -> None:
    """Add `ess export-migrate` to the CLI."""
    p = sub.add_parser("export-migrate",
                       help="move daily files from the date-first to the type-first layout")
    p.add_argument("--dest", required=True, help="gs://BUCKET/PREFIX or a local directory")
    p.add_argument("--dry-run", action="store_true", help="print the moves, change nothing")
    p.set_defaults(func=_cmd_migrate)
