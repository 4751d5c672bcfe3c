"""The export function's other tasks: `rollup` and `retention` requests (Flask test client, a
real database and the GCS emulator), and a task it does not know."""

from __future__ import annotations

from pathlib import Path

import functions_framework
import pytest
from export_helpers import export_day, load_db

MAIN = Path(__file__).resolve().parents[2] / "functions" / "export" / "main.py"


@pytest.fixture
def app(monkeypatch, gcs_emulator, bucket, sites_path, timescale_db):
    for k, v in {**gcs_emulator.env(), "ESS_SITES_CONFIG": str(sites_path),
                 "ESS_EXPORT_BUCKET": bucket, "ESS_DB_DSN": timescale_db,
                 "ESS_RETENTION_RAW_DAYS": "3"}.items():
        monkeypatch.setenv(k, v)
    return functions_framework.create_app(target="export", source=str(MAIN)).test_client()


def test_rollup_and_retention_tasks(app, sites, timescale_db):
    conn = load_db(timescale_db, sites, export_day())
    resp = app.post("/", json={"task": "rollup"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["task"] == "rollup" and body["complete"] and body["minutes"]["bank_1m"] > 0
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM bank_1m")
    assert cur.fetchone()[0] == body["minutes"]["bank_1m"]
    conn.rollback()
    resp = app.post("/", json={"task": "retention", "format": "csv"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["task"] == "retention" and body["dropped"] == 0     # nothing exported yet
    assert all(r["reason"] == "not exported" for r in body["ranges"])
    conn.close()


def test_unknown_task_is_refused(app):
    resp = app.post("/", json={"task": "vacuum"})
    assert resp.status_code == 400 and "unknown task 'vacuum'" in resp.get_json()["error"]
