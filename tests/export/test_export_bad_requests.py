"""Bad requests to the real export function (functions-framework, issue 13 item 11): each kind
gets a 400 naming the problem and writes nothing; a failure inside (the database down) gets a
generic 500 whose error id is in the ERROR log line, and no DSN, host or port."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from ess.cli import main as ess_main
from ess.sites import load_sites
from ess_local.functions import FunctionProcess
from ess_local.procs import free_port
from export_helpers import SEOUL, SITES_YAML, export_day, load_db

MAIN = Path(__file__).resolve().parents[2] / "functions" / "export" / "main.py"


def _post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type},
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _bad_bodies(day) -> list[tuple[str, bytes, str]]:
    """(name, body, text the error must contain) of every kind of bad request."""
    today = datetime.now(SEOUL).date()

    def js(doc) -> bytes:
        return json.dumps(doc).encode()

    return [
        ("not json", b"{date: yesterday", "not valid JSON"),
        ("json array", js([str(day)]), "must be a JSON object"),
        ("json string", js("2026-01-01"), "must be a JSON object"),
        ("date a number", js({"date": 20260101}), "invalid date 20260101"),
        ("date a list", js({"date": [str(day)]}), "invalid date"),
        ("site a list", js({"site": ["site-a"]}), "unknown site"),
        ("format a number", js({"format": 5}), "unknown format 5"),
        ("format a list", js({"format": []}), "unknown format []"),
        ("format an object", js({"format": {"csv": 1}}), "unknown format"),
        ("JSON nested 50,000 deep", b"[" * 50_000 + b"]" * 50_000, "not valid JSON"),
        ("no such day", js({"date": "2026-02-30"}), "invalid date '2026-02-30'"),
        ("short date", js({"date": "2026-1-1"}), "expected YYYY-MM-DD"),
        ("trailing newline", js({"date": f"{day}\n"}), "invalid date"),
        ("leading space", js({"date": f" {day}"}), "invalid date"),
        ("words", js({"date": "yesterday"}), "expected YYYY-MM-DD"),
        ("before the first day", js({"date": str(day - timedelta(days=2))}),
         "before the first day"),
        ("year 1999", js({"date": "1999-06-01", "site": "site-a"}), "before the first day"),
        ("day after tomorrow", js({"date": str(today + timedelta(days=2))}), "in the future"),
        ("far future", js({"date": "9999-12-31"}), "in the future"),
        ("unknown site", js({"date": str(day), "site": "nowhere"}), "unknown site 'nowhere'"),
        ("site with newline", js({"date": str(day), "site": "site-a\n"}), "unknown site"),
    ]


def test_bad_bodies_are_refused_and_write_nothing(timescale_db, gcs_emulator, bucket,
                                                  sites_path, sites, tmp_path):
    day = export_day()
    load_db(timescale_db, sites, day).close()   # earliest row: day - 1, 23:59:59 in Seoul
    env = {**gcs_emulator.env(), "ESS_SITES_CONFIG": str(sites_path),
           "ESS_DB_DSN": timescale_db, "ESS_EXPORT_BUCKET": bucket}
    with FunctionProcess("export", MAIN, free_port(), env=env, log_dir=tmp_path) as fn:
        results = {name: (_post(fn.url, body), expected)
                   for name, body, expected in _bad_bodies(day)}
        first = _post(fn.url, json.dumps({"date": str(day - timedelta(days=1)),
                                          "site": "site-a"}).encode())
    wrong = {name: got for name, (got, expected) in results.items()
             if got[0] != 400 or expected not in got[1].get("error", "")}
    assert not wrong, wrong
    assert first[0] == 200 and first[1]["written"] == 5, first   # the first day itself is fine
    names = [b.name for b in gcs_emulator.client().list_blobs(bucket)]
    assert all(f"date={day - timedelta(days=1)}" in n for n in names), names


def test_database_failure_is_not_echoed(gcs_emulator, bucket, sites_path, tmp_path):
    port = free_port()
    dsn = f"postgresql://ess_reader:s3cret-pw@127.0.0.1:{port}/ess_prod"
    env = {**gcs_emulator.env(), "ESS_SITES_CONFIG": str(sites_path), "ESS_DB_DSN": dsn,
           "ESS_EXPORT_BUCKET": bucket}
    with FunctionProcess("export", MAIN, free_port(), env=env, log_dir=tmp_path) as fn:
        status, body = _post(fn.url, json.dumps({"date": str(export_day())}).encode())
        log = fn.log_path.read_text()
    text = json.dumps(body)
    assert status == 500, body
    for secret in ("127.0.0.1", str(port), "s3cret", "ess_reader", "ess_prod", "postgresql"):
        assert secret not in text, (secret, body)
    error_id = body["error_id"]
    assert len(error_id) >= 8 and error_id in body["error"]
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    failed = [e for e in lines if e.get("error_id") == error_id]
    assert len(failed) == 1 and failed[0]["severity"] == "ERROR", failed
    assert failed[0]["message"].startswith("export failed")
    assert list(gcs_emulator.client().list_blobs(bucket)) == []


def test_configured_first_date(timescale_db, tmp_path, capsys):
    """`export.first_date` wins over the earliest row, in the CLI too."""
    day = export_day()
    path = tmp_path / "sites.yaml"
    path.write_text(SITES_YAML + f"export:\n  first_date: '{day}'\n")
    load_db(timescale_db, load_sites(path), day).close()
    argv = ["export", "--dest", str(tmp_path / "out"), "--dsn", timescale_db,
            "--config", str(path), "--quiet"]
    assert ess_main([*argv, "--date", str(day - timedelta(days=1))]) == 2
    err = capsys.readouterr().err
    assert f"before the first day {day}" in err and "export.first_date" in err
    assert not (tmp_path / "out").exists()
    assert ess_main([*argv, "--date", str(day), "--site", "site-a"]) == 0
    path.write_text(SITES_YAML + "export:\n  first_date: '2026-02-30'\n")
    assert ess_main([*argv, "--date", str(day)]) == 2
    assert "export.first_date" in capsys.readouterr().err


@pytest.mark.usefixtures("needs_service")
def test_unreachable_bucket_fails_fast(sites_path, tmp_path):
    """GCS down (a closed port): a generic 500 well within the function's timeout."""
    port = free_port()
    env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}", "ESS_EXPORT_BUCKET": "csv",
           "ESS_SITES_CONFIG": str(sites_path), "ESS_DB_DSN": "postgresql://ess@127.0.0.1:1/x"}
    with FunctionProcess("export", MAIN, free_port(), env=env, log_dir=tmp_path) as fn:
        t0 = time.monotonic()
        status, body = _post(fn.url, json.dumps({"date": str(export_day())}).encode())
        took = time.monotonic() - t0
    assert status == 500 and body["error_id"] and str(port) not in json.dumps(body), body
    assert took < 45, took
