"""Export to the GCS emulator from TimescaleDB: content, boundaries, manifest, idempotency."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from ess_functions.export import export_jobs, plan_jobs
from ess_functions.export.manifest import manifest_key, update_manifest
from ess_functions.objstore import Conflict, DirStore, GcsStore
from export_helpers import assert_csv_matches, export_day, load_db, local, parse_csv

TYPES = ("bank", "rack", "pcs", "etc")
FILES = (*TYPES, "events")     # a file of each type and of the alarm episodes


def _generations(client, bucket):
    return {b.name: b.generation for b in client.list_blobs(bucket)}


def _assert_day_files(client, bucket, conn, sites, day) -> None:
    """The day's 10 files and its manifest: names, contents and manifest entries."""
    names = sorted(b.name for b in client.list_blobs(bucket))
    mkey = f"daily/_manifests/date={day}/manifest.json"
    assert names == sorted([mkey] + [
        f"daily/type={t}/date={day}/site={s}.csv" for t in FILES for s in ("site-a", "site-b")])
    manifest = json.loads(client.bucket(bucket).blob(mkey).download_as_bytes())
    assert manifest["date"] == str(day) and len(manifest["files"]) == 10
    for t in TYPES:
        for s in ("site-a", "site-b"):
            data = client.bucket(bucket).blob(f"daily/type={t}/date={day}/site={s}.csv") \
                .download_as_bytes()
            rows = assert_csv_matches(data, conn, sites, s, t, day)
            entry = manifest["files"][f"type={t}/date={day}/site={s}.csv"]
            assert entry["rows"] == len(rows) and entry["bytes"] == len(data)
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
            assert entry["maps"] == "default@1"


def _assert_day_edges(client, bucket, day) -> None:
    """Boundary rows: 00:00:00 and 23:59:59 local are in; the neighbours' edges are not."""
    mkey = f"daily/_manifests/date={day}/manifest.json"
    manifest = json.loads(client.bucket(bucket).blob(mkey).download_as_bytes())
    bank_key = f"daily/type=bank/date={day}/site=site-a.csv"
    _, bank_a = parse_csv(client.bucket(bucket).blob(bank_key).download_as_bytes())
    ts = [r["ts"] for r in bank_a]
    assert ts[0] == f"{day}T00:00:00.000000+09:00" and ts[-1] == f"{day}T23:59:59.000000+09:00"
    assert [r["bank_id"] for r in bank_a[:2]] == ["1", "2"]
    assert len(bank_a) == 4 * 2
    entry = manifest["files"][f"type=bank/date={day}/site=site-a.csv"]
    assert entry["first_ts"] == ts[0] and entry["last_ts"] == ts[-1]
    assert entry["day_start"] == f"{day}T00:00:00+09:00"
    _, bank_b = parse_csv(client.bucket(bucket).blob(f"daily/type=bank/date={day}/site=site-b.csv")
                          .download_as_bytes())
    assert [r["ts"][11:19] for r in bank_b] == ["00:00:00", "09:00:00", "23:59:59"]


def test_day_export_rerun_and_late_row(timescale_db, gcs_emulator, bucket, sites):
    day = export_day()
    conn = load_db(timescale_db, sites, day)
    client = gcs_emulator.client()
    dest = GcsStore(bucket, "daily", client=client)
    jobs = plan_jobs(sites, days=[day])

    summary = export_jobs(conn, jobs, dest)
    assert summary["written"] == 10 and summary["unchanged"] == 0
    _assert_day_files(client, bucket, conn, sites, day)
    _assert_day_edges(client, bucket, day)
    mkey = f"daily/_manifests/date={day}/manifest.json"
    bank_key = f"daily/type=bank/date={day}/site=site-a.csv"

    # unchanged re-run: no object rewritten, manifest included
    before = _generations(client, bucket)
    again = export_jobs(conn, jobs, dest)
    assert again["written"] == 0 and again["unchanged"] == 10
    assert not again["manifests"][0]["written"]
    assert _generations(client, bucket) == before

    # a late row: only its file (and the manifest) change
    cur = conn.cursor()
    cur.execute("INSERT INTO bank (ts, site_id, bank_id) VALUES (%s, 'site-a', 3)",
                (local(day, 13),))
    conn.commit()
    late = export_jobs(conn, jobs, dest)
    assert late["written"] == 1
    after = _generations(client, bucket)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {bank_key, mkey}
    data = client.bucket(bucket).blob(bank_key).download_as_bytes()
    assert len(assert_csv_matches(data, conn, sites, "site-a", "bank", day)) == 9
    settled = export_jobs(conn, jobs, dest)  # the manifest agrees with the objects' metadata
    assert settled["written"] == 0 and not settled["manifests"][0]["written"]
    assert _generations(client, bucket) == after
    conn.close()


def test_empty_day_and_gzip(timescale_db, gcs_emulator, bucket, sites):
    day = export_day() - timedelta(days=10)
    conn = load_db(timescale_db, sites, export_day())
    client = gcs_emulator.client()
    dest = GcsStore(bucket, client=client)
    summary = export_jobs(conn, plan_jobs(sites, days=[day], site="site-b"), dest, fmt="csv.gz")
    assert summary["written"] == 5
    manifest = json.loads(client.bucket(bucket).blob(f"_manifests/date={day}/manifest.json")
                          .download_as_bytes())
    assert manifest["total_rows"] == 0
    import gzip

    for t in TYPES:
        entry = manifest["files"][f"type={t}/date={day}/site=site-b.csv.gz"]
        assert entry["rows"] == 0 and entry["first_ts"] is None
        blob = client.bucket(bucket).get_blob(f"type={t}/date={day}/site=site-b.csv.gz")
        header, rows = parse_csv(gzip.decompress(blob.download_as_bytes()))
        assert rows == [] and header[:3] == ["site_id", "bank_id", "rack_id" if t == "rack"
                                             else "ts"]
        assert blob.metadata["rows"] == "0" and blob.content_type == "application/gzip"
    conn.close()


def test_generation_preconditions(gcs_emulator, bucket, tmp_path):
    """A writer holding a stale generation is refused; the manifest merge retries and keeps both.

    (fake-gcs-server enforces preconditions on simple uploads only, not on resumable ones, so
    the CSV upload's `if_generation_match` is exercised here through the local destination.)
    """
    dest = GcsStore(bucket, client=gcs_emulator.client())
    g1 = dest.write_json("m.json", {"v": 1}, 0)
    dest.write_json("m.json", {"v": 2}, g1)
    with pytest.raises(Conflict):
        dest.write_json("m.json", {"v": 3}, g1)
    assert dest.read_json("m.json")[0] == {"v": 2}

    class Racing(GcsStore):
        raced = False

        def read_json(self, key):
            doc, gen = super().read_json(key)
            if not self.raced:  # another run writes its entry right after our read
                self.raced = True
                other = {"date": "d", "files": {"type=etc/site=z.csv": {"rows": 1}}}
                super().write_json(key, other, gen)
            return doc, gen

    racing = Racing(bucket, "race", client=gcs_emulator.client())
    written, count = update_manifest(racing, "d", {"type=etc/site=y.csv": {"rows": 2}}, "now")
    files = racing.read_json(manifest_key("d"))[0]["files"]
    assert written and count == 2 and set(files) == {"type=etc/site=y.csv", "type=etc/site=z.csv"}

    local = DirStore(tmp_path, keep_metadata=False)
    first = local.upload("x.csv", lambda out: out.write(b"a\n"), if_generation_match=0)
    local.upload("x.csv", lambda out: out.write(b"b\n"), if_generation_match=first.generation)
    with pytest.raises(Conflict):
        local.upload("x.csv", lambda out: out.write(b"c\n"),
                     if_generation_match=first.generation)
    assert (tmp_path / "x.csv").read_bytes() == b"b\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]
