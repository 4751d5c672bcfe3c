"""Export manifests in-process (export/manifest.py), in a local directory store: keys, a file's
facts through its metadata and back, and the day's manifest merged under a generation
precondition (written only on change; a concurrent writer's entries are kept)."""

from __future__ import annotations

import os

import pytest
from ess_functions.export.manifest import (
    MANIFEST_VERSION,
    file_key,
    from_metadata,
    manifest_key,
    to_metadata,
    update_manifest,
)
from ess_functions.objstore import Conflict, DirStore

DAY = "2026-11-25"
ENTRY = {"site": "site-a", "type": "bank", "date": DAY, "sha256": "ab" * 32, "rows": 86400,
         "csv_bytes": 1234567, "first_ts": "2026-11-24T15:00:00+00:00",
         "last_ts": "2026-11-25T14:59:59+00:00", "day_start": "2026-11-24T15:00:00+00:00",
         "day_end": "2026-11-25T15:00:00+00:00", "time_zone": "Asia/Seoul",
         "maps": "default v1", "format": "csv", "compression": None,
         "exported_at": "2026-11-26T00:30:00+00:00"}


def test_keys():
    assert file_key("bank", DAY, "site-a") == f"type=bank/date={DAY}/site=site-a.csv"
    assert file_key("rack", DAY, "s", ".parquet") == f"type=rack/date={DAY}/site=s.parquet"
    assert manifest_key(DAY) == f"_manifests/date={DAY}/manifest.json"


def test_a_files_facts_travel_as_string_metadata_and_come_back():
    meta = to_metadata(ENTRY)
    assert all(isinstance(v, str) for v in meta.values())
    assert meta["rows"] == "86400" and meta["compression"] == ""
    back = from_metadata(meta, size=999, generation=7)
    assert back == {**ENTRY, "bytes": 999, "generation": 7}
    assert from_metadata({}, 1, 1) is None and from_metadata({"site": "x"}, 1, 1) is None


def entry(site: str, rows: int) -> dict:
    return {**ENTRY, "site": site, "rows": rows}


def test_the_days_manifest_is_written_once_and_merged(tmp_path):
    store = DirStore(tmp_path)
    key_a, key_b = file_key("bank", DAY, "site-a"), file_key("bank", DAY, "site-b")
    assert update_manifest(store, DAY, {key_a: entry("site-a", 10)}, "t1") == (True, 1)
    assert update_manifest(store, DAY, {key_a: entry("site-a", 10)}, "t2") == (False, 1)
    assert update_manifest(store, DAY, {key_b: entry("site-b", 5)}, "t3") == (True, 2)
    doc, _ = store.read_json(manifest_key(DAY))
    assert doc["manifest_version"] == MANIFEST_VERSION and doc["date"] == DAY
    assert doc["generated_at"] == "t3" and list(doc["files"]) == [key_a, key_b]
    assert doc["total_rows"] == 15
    # a changed file replaces its entry; a section is merged key by key
    assert update_manifest(store, DAY, {key_a: entry("site-a", 11)}, "t4",
                           sections={"data_status": {"site-a/1": {"stored": 11}}}) == (True, 2)
    assert update_manifest(store, DAY, {}, "t5",
                           sections={"data_status": {"site-b/1": {"stored": 5}}}) == (True, 2)
    doc, _ = store.read_json(manifest_key(DAY))
    assert doc["total_rows"] == 16 and set(doc["data_status"]) == {"site-a/1", "site-b/1"}


class Racing(DirStore):
    """Another export writes the manifest between our read and our write, `races` times."""

    def __init__(self, root, races: int):
        super().__init__(root)
        self.races = races

    def read_json(self, key):
        doc, generation = super().read_json(key)
        if self.races:
            self.races -= 1
            other = {**(doc or {}), "files": {**(doc or {}).get("files", {}),
                                              f"other-{self.races}": entry("other", 1)}}
            super().write_json(key, other, generation)
            path = self.root / key         # a new generation even within the clock's tick
            os.utime(path, ns=(generation + 10**9, generation + 10**9))
        return doc, generation


def test_a_concurrent_writers_entries_are_kept(tmp_path):
    store = Racing(tmp_path, races=2)
    key = file_key("bank", DAY, "site-a")
    assert update_manifest(store, DAY, {key: entry("site-a", 3)}, "t") == (True, 3)
    doc, _ = store.read_json(manifest_key(DAY))
    assert set(doc["files"]) == {key, "other-0", "other-1"} and doc["total_rows"] == 5


def test_a_manifest_that_keeps_changing_is_a_conflict(tmp_path):
    store = Racing(tmp_path, races=5)
    with pytest.raises(Conflict, match="kept changing"):
        update_manifest(store, DAY, {"k": entry("site-a", 1)}, "t", attempts=5)
