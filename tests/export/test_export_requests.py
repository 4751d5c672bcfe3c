"""The HTTP function (Flask test client and functions-framework) and the CLI, good and bad."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import functions_framework
import pytest
from ess.cli import main as ess_main
from ess_local.functions import FunctionProcess
from ess_local.procs import free_port
from export_helpers import SEOUL, assert_csv_matches, export_day, load_db

MAIN = Path(__file__).resolve().parents[2] / "functions" / "export" / "main.py"
NO_DB = "postgresql://ess@127.0.0.1:1/never_used"


@pytest.fixture
def app(monkeypatch, gcs_emulator, bucket, sites_path):
    for k, v in {**gcs_emulator.env(), "ESS_SITES_CONFIG": str(sites_path),
                 "ESS_EXPORT_BUCKET": bucket, "ESS_DB_DSN": NO_DB}.items():
        monkeypatch.setenv(k, v)
    return functions_framework.create_app(target="export", source=str(MAIN)).test_client()


@pytest.mark.parametrize("payload, reason", [
    ({"site": "nowhere"}, "unknown site 'nowhere'"),
    ({"date": "2026-02-30"}, "invalid date '2026-02-30'"),
    ({"date": "yesterday"}, "expected YYYY-MM-DD"),
    ({"date": "FUTURE"}, "in the future"),
    ({"format": "xlsx"}, "unknown format 'xlsx'"),
    ({"format": "parquet", "gzip": True}, "gzip goes with format csv.gz"),
    ("not json", "not valid JSON"),
    ({"bucket": None}, "ESS_EXPORT_BUCKET is not set"),
    ({"bucket": "no-such-bucket-x"}, "bucket 'no-such-bucket-x' does not exist"),
])
def test_http_bad_requests_write_nothing(app, monkeypatch, gcs_emulator, bucket, payload, reason):
    if isinstance(payload, dict) and "bucket" in payload:
        if payload.pop("bucket") is None:
            monkeypatch.delenv("ESS_EXPORT_BUCKET")
        else:
            monkeypatch.setenv("ESS_EXPORT_BUCKET", "no-such-bucket-x")
    if payload == {"date": "FUTURE"}:
        payload = {"date": str(datetime.now(SEOUL).date() + timedelta(days=2))}
    if isinstance(payload, dict):
        resp = app.post("/", json=payload)
    else:
        resp = app.post("/", data=payload, content_type="application/json")
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert reason in resp.get_json()["error"]
    assert list(gcs_emulator.client().list_blobs(bucket)) == []


def test_function_end_to_end(timescale_db, gcs_emulator, bucket, sites, sites_path, tmp_path):
    day = export_day()
    conn = load_db(timescale_db, sites, day)
    env = {**gcs_emulator.env(), "ESS_SITES_CONFIG": str(sites_path), "ESS_DB_DSN": timescale_db,
           "ESS_EXPORT_BUCKET": bucket, "ESS_EXPORT_PREFIX": "daily"}
    with FunctionProcess("export", MAIN, free_port(), env=env, log_dir=tmp_path) as fn:
        req = urllib.request.Request(fn.url, data=json.dumps({"date": str(day), "site": "site-a",
                                                              "trigger": "scheduler"}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            summary = json.load(resp)
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(fn.url + "?site=nowhere", timeout=30)
        log = fn.log_path.read_text()
    assert bad.value.code == 400 and "unknown site" in json.load(bad.value)["error"]
    assert summary["written"] == 5, summary
    blob = gcs_emulator.client().bucket(bucket).blob(f"daily/type=rack/date={day}/site=site-a.csv")
    assert_csv_matches(blob.download_as_bytes(), conn, sites, "site-a", "rack", day)
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    files = [e for e in events if e.get("stage") == "accumulate" and e.get("type")]
    assert {e["type"] for e in files} == {"bank", "rack", "pcs", "etc", "events"}
    assert all({"site", "rows", "bytes", "duration_ms"} <= set(e) for e in files)
    conn.close()


def test_cli_partitioned_to_directory(plain_db, sites, sites_path, tmp_path, capsys):
    day = export_day()
    conn = load_db(plain_db, sites, day, mode="partitioned")
    out = tmp_path / "out"
    argv = ["export", "--from", str(day - timedelta(days=1)), "--to", str(day), "--dest", str(out),
            "--dsn", plain_db, "--config", str(sites_path), "--gzip"]
    assert ess_main(argv) == 0
    assert "20 written, 0 unchanged" in capsys.readouterr().out
    for site in ("site-a", "site-b"):
        for t in ("bank", "rack", "pcs", "etc"):
            data = gzip.decompress((out / f"type={t}/date={day}/site={site}.csv.gz").read_bytes())
            assert_csv_matches(data, conn, sites, site, t, day)
    manifest = json.loads((out / f"_manifests/date={day}/manifest.json").read_text())
    events = sum(e["rows"] for k, e in manifest["files"].items() if k.startswith("type=events"))
    assert manifest["total_rows"] == (4 * 2 + 3) * 11 + events    # polls x rows, and episodes
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert ess_main(argv + ["--quiet"]) == 0
    assert "0 written, 20 unchanged" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes
    conn.close()


@pytest.mark.parametrize("args, reason", [
    (["--site", "nowhere", "--date", "2026-01-01"], "unknown site 'nowhere'"),
    (["--date", "2026-1-1"], "invalid date '2026-1-1'"),
    (["--date", "FUTURE"], "in the future"),
    (["--from", "2026-01-05", "--to", "2026-01-01"], "before --from"),
    (["--date", "2026-01-01", "--dest", "ftp://x"], "unsupported destination"),
    (["--date", "2026-01-01", "--format", "parquet", "--gzip"], "gzip goes with format csv.gz"),
])
def test_cli_bad_requests(args, reason, sites_path, tmp_path, capsys):
    args = [str(datetime.now(SEOUL).date() + timedelta(days=2)) if a == "FUTURE" else a
            for a in args]
    dest = [] if "--dest" in args else ["--dest", str(tmp_path / "out")]
    code = ess_main(["export", *args, *dest, "--dsn", NO_DB, "--config", str(sites_path)])
    assert code == 2 and reason in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
