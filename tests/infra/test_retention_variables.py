"""The `retention` variable (rollups and retention tiers) under a real `terraform`: defaults,
each validation rule, and the values it accepts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

INFRA = Path(__file__).resolve().parents[2] / "infra"
TERRAFORM = shutil.which("terraform")
REQUIRED = {"project_id": "p", "sites_config_path": "sites.yaml",
            "artifacts": {"wheel": "build/ess_pipeline-0.1.0-py3-none-any.whl",
                          "ingest_zip": "build/ingest.zip", "export_zip": "build/export.zip"}}


def _tf(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TERRAFORM, *args, "-no-color"], cwd=cwd, capture_output=True,
                          text=True, timeout=120,
                          env={"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
                               "PATH": "/usr/bin:/bin", "HOME": str(cwd)})


@pytest.fixture(scope="module")
def module(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("retention")
    shutil.copy(INFRA / "variables.tf", d / "variables.tf")
    (d / "outputs.tf").write_text('output "retention" {\n  value = var.retention\n}\n')
    assert _tf(d, "init", "-input=false").returncode == 0
    return d


def _apply(d: Path, retention: dict | None) -> subprocess.CompletedProcess:
    values = REQUIRED if retention is None else {**REQUIRED, "retention": retention}
    (d / "case.tfvars.json").write_text(json.dumps(values))
    return _tf(d, "apply", "-auto-approve", "-input=false", "-var-file=case.tfvars.json")


def test_defaults(module):
    assert _apply(module, None).returncode == 0
    out = json.loads(_tf(module, "output", "-json").stdout)["retention"]["value"]
    assert out == {"raw_days": 30, "minute_rollup_days": 730, "hour_rollup_days": 0,
                   "schedule": "30 3 * * *", "rollup_schedule": "*/5 * * * *",
                   "rollup_stale_minutes": 60}


@pytest.mark.parametrize("values, message", [
    ({"raw_days": 2}, "retention.raw_days must"),
    ({"raw_days": 30.5}, "retention.raw_days must"),
    ({"raw_days": 60, "minute_rollup_days": 30}, "retention.minute_rollup_days must"),
    ({"minute_rollup_days": 400, "hour_rollup_days": 100}, "retention.hour_rollup_days must"),
    ({"minute_rollup_days": 0, "hour_rollup_days": 3650}, "retention.hour_rollup_days must"),
    ({"rollup_schedule": "every 5 minutes"}, "retention.schedule and"),
    ({"rollup_stale_minutes": 10}, "retention.rollup_stale_minutes must"),
    ({"rollup_stale_minutes": 2000}, "retention.rollup_stale_minutes must"),
    ({"rollup_stale_minutes": 60.5}, "retention.rollup_stale_minutes must"),
    ({"rollup_schedule": "*/45 * * * *"}, "retention.rollup_stale_minutes must"),
    ({"rollup_schedule": "7 * * * *", "rollup_stale_minutes": 90},
     "retention.rollup_stale_minutes must"),
])
def test_validation_rejects(module, values, message):
    proc = _apply(module, values)
    assert proc.returncode != 0, f"{values} was accepted"
    assert message in " ".join((proc.stdout + proc.stderr).split())


@pytest.mark.parametrize("values", [
    {"raw_days": 3, "minute_rollup_days": 3, "hour_rollup_days": 3},
    {"raw_days": 7, "minute_rollup_days": 90, "hour_rollup_days": 0,
     "rollup_schedule": "* * * * *"},
    {"minute_rollup_days": 0},
    {"rollup_schedule": "7 * * * *", "rollup_stale_minutes": 120},
    {"rollup_schedule": "*/30 * * * *", "rollup_stale_minutes": 60},
    {"rollup_schedule": "* * * * *", "rollup_stale_minutes": 15},
])
def test_validation_accepts(module, values):
    proc = _apply(module, values)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scheduler_runs_rollup_and_retention_on_the_export_function(root):
    from tfmodule import block, refs

    job = root["resource"]["google_cloud_scheduler_job"]["upkeep"]
    tasks = job["for_each"]
    assert tasks["rollup"]["schedule"] == "${var.retention.rollup_schedule}"
    assert tasks["retention"]["schedule"] == "${var.retention.schedule}"
    assert tasks["rollup"]["body"]["task"] == "rollup"
    assert tasks["retention"]["body"] == {"trigger": "scheduler", "task": "retention",
                                          "format": "${var.export_format}"}
    http = block(job, "http_target")
    assert refs(http["uri"]) == {("google_cloudfunctions2_function", "export")}
    assert 'component["scheduler"]' in block(http, "oidc_token")["service_account_email"]
    env = json.dumps(root["resource"]["google_cloudfunctions2_function"]["export"])
    for name, attr in (("RAW", "raw_days"), ("MINUTE", "minute_rollup_days"),
                       ("HOUR", "hour_rollup_days")):
        assert f"ESS_RETENTION_{name}_DAYS" in env and f"var.retention.{attr}" in env
