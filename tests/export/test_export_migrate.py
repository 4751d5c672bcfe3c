"""`ess export-migrate`: an export in the old date-first layout moves to the type-first one."""

from __future__ import annotations

import re

from ess.cli import main as ess_main
from ess_functions.export import export_jobs, plan_jobs
from ess_functions.export.manifest import manifest_key
from ess_functions.objstore import DirStore, GcsStore
from export_helpers import export_day, load_db

_NEW = re.compile(r"^type=([^/]+)/(date=[^/]+)/(site=[^/]+)$")


def _to_old_layout(dest, day) -> dict[str, bytes]:
    """Rewrite a new-layout export as the old code wrote it; return old key -> content."""
    old = {}
    doc, gen = dest.read_json(manifest_key(str(day)))
    files = {}
    for key, entry in doc["files"].items():
        t, d, s = _NEW.match(key).groups()
        moved = dest.move(key, f"{d}/type={t}/{s}")
        files[f"type={t}/{s}"] = {**entry, "generation": moved.generation}
        old[f"{d}/type={t}/{s}"] = dest.get(f"{d}/type={t}/{s}")
    dest.write_json(f"date={day}/manifest.json", {**doc, "files": files}, 0)
    dest.delete(manifest_key(str(day)), gen)
    return old


def _check_migrated(dest, day, old: dict[str, bytes], jobs, conn, fmt="csv") -> None:
    keys = dest.list()
    assert not any(k.startswith("date=") for k in keys), keys
    for key, data in old.items():
        d, t, s = key.split("/")
        assert dest.get(f"{t}/{d}/{s}") == data
    doc, _ = dest.read_json(manifest_key(str(day)))
    assert sorted(doc["files"]) == sorted(f"{k.split('/')[1]}/{k.split('/')[0]}/"
                                          f"{k.split('/')[2]}" for k in old)
    again = export_jobs(conn, jobs, dest, fmt=fmt)   # moved files are recognised: none rewritten
    assert again["written"] == 0 and again["unchanged"] == len(old), again
    assert not again["manifests"][0]["written"]


def test_migrate_bucket(timescale_db, gcs_emulator, bucket, sites, monkeypatch, capsys):
    for k, v in gcs_emulator.env().items():
        monkeypatch.setenv(k, v)
    day = export_day()
    conn = load_db(timescale_db, sites, day)
    dest = GcsStore(bucket, "daily", client=gcs_emulator.client())
    jobs = plan_jobs(sites, days=[day])
    export_jobs(conn, jobs, dest)
    old = _to_old_layout(dest, day)
    before = dest.list()
    assert ess_main(["export-migrate", "--dest", f"gs://{bucket}/daily", "--dry-run"]) == 0
    assert dest.list() == before and "would move" in capsys.readouterr().out
    assert ess_main(["export-migrate", "--dest", f"gs://{bucket}/daily"]) == 0
    assert "10 moved, 0 kept, 1 manifest(s)" in capsys.readouterr().out
    for key in old:
        d, t, s = key.split("/")
        assert dest.stat(f"{t}/{d}/{s}").metadata["sha256"]   # metadata travelled with it
    _check_migrated(dest, day, old, jobs, conn)
    assert ess_main(["export-migrate", "--dest", f"gs://{bucket}/daily"]) == 0
    assert "0 moved, 0 kept, 0 manifest(s)" in capsys.readouterr().out
    conn.close()


def test_migrate_directory(plain_db, sites, tmp_path, capsys):
    day = export_day()
    conn = load_db(plain_db, sites, day, mode="partitioned")
    dest = DirStore(tmp_path, keep_metadata=False)   # as `ess export --dest DIR` writes it
    jobs = plan_jobs(sites, days=[day], site="site-b")
    export_jobs(conn, jobs, dest, fmt="csv.gz")
    old = _to_old_layout(dest, day)
    assert ess_main(["export-migrate", "--dest", str(tmp_path)]) == 0
    assert "5 moved" in capsys.readouterr().out
    _check_migrated(dest, day, old, jobs, conn, fmt="csv.gz")
    conn.close()
