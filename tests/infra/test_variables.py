"""The object variables of infra/ evaluated by a real `terraform` (no provider needed): their
optional() defaults, each validation rule, and the inputs infra/examples/dev passes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TERRAFORM = shutil.which("terraform")

# runs terraform, a tool `make install` does not install: the full tier (tests/conftest.py)
pytestmark = [pytest.mark.skipif(TERRAFORM is None, reason="no terraform binary on PATH"),
              pytest.mark.usefixtures("needs_service")]

ARTIFACTS = {"wheel": "build/ess_pipeline-0.1.0-py3-none-any.whl",
             "ingest_zip": "build/ingest.zip", "export_zip": "build/export.zip"}
REQUIRED = {"project_id": "p", "sites_config_path": "sites.yaml", "artifacts": ARTIFACTS}

# The defaults the flat variables had before they became objects; they must not change.
DEFAULTS = {
    "ingest": {"memory": "512Mi", "cpu": "1", "concurrency": 16, "min_instances": 1,
               "max_instances": 10, "timeout_seconds": 60},
    "export": {"memory": "1Gi", "cpu": "1", "concurrency": 1, "min_instances": 0,
               "max_instances": 2, "timeout_seconds": 1800},
    "database": {"version": "POSTGRES_17", "tier": "db-custom-2-7680",
                 "availability_type": "ZONAL", "disk_size_gb": 50, "name": "ess",
                 "backup_start_time": "18:00", "backup_retained_count": 14,
                 "pitr_log_retention_days": 7, "deletion_protection": True,
                 "max_connections": 200, "replica_region": None,
                 "replica_zone": "asia-northeast3-b",
                 "external_dsn_secret": {"main": None, "replica": None}},
}
OBJECTS = ("artifacts", "ingest", "export", "database")


def _tf(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["-no-color"] if args[0] == "output" else ["-input=false", "-no-color"]
    return subprocess.run([TERRAFORM, args[0], *flags, *args[1:]], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
                               "PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def _outputs(cwd: Path, *args: str) -> dict:
    proc = _tf(cwd, "apply", "-auto-approve", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = _tf(cwd, "output", "-json")
    return {k: v["value"] for k, v in json.loads(out.stdout).items()}


@pytest.fixture(scope="module")
def module_vars(tmp_path_factory) -> Path:
    """infra/variables.tf alone, with an output per object variable, initialised."""
    d = tmp_path_factory.mktemp("vars")
    shutil.copy(INFRA / "variables.tf", d / "variables.tf")
    (d / "outputs.tf").write_text("".join(
        f'output "{n}" {{\n  value = var.{n}\n}}\n' for n in OBJECTS))
    assert _tf(d, "init").returncode == 0
    return d


def _plan(d: Path, values: dict) -> subprocess.CompletedProcess:
    (d / "case.tfvars.json").write_text(json.dumps({**REQUIRED, **values}))
    return _tf(d, "plan", "-var-file=case.tfvars.json")


def test_defaults_unchanged(module_vars):
    (module_vars / "case.tfvars.json").write_text(json.dumps(REQUIRED))
    out = _outputs(module_vars, "-var-file=case.tfvars.json")
    for name, expected in DEFAULTS.items():
        assert out[name] == expected, name
    assert out["artifacts"] == ARTIFACTS


BAD = [
    ({"artifacts": {**ARTIFACTS, "wheel": "build/ess_pipeline.whl"}}, "artifacts.wheel must"),
    ({"artifacts": {**ARTIFACTS, "wheel": "build/ess_pipeline-0.1.0.tar.gz"}},
     "artifacts.wheel must"),
    ({"artifacts": {**ARTIFACTS, "export_zip": "build/export.tar"}}, "artifacts.ingest_zip and"),
    ({"ingest": {"concurrency": 0}}, "ingest.concurrency must"),
    ({"ingest": {"concurrency": 1001}}, "ingest.concurrency must"),
    ({"export": {"concurrency": 2.5}}, "export.concurrency must"),
    ({"ingest": {"min_instances": 5, "max_instances": 3}}, "ingest.min_instances must"),
    ({"export": {"max_instances": 0}}, "export.min_instances must"),
    ({"ingest": {"timeout_seconds": 3601}}, "ingest.timeout_seconds must"),
    ({"export": {"timeout_seconds": 0}}, "export.timeout_seconds must"),
    ({"ingest": {"memory": "512MB"}}, "ingest.memory must"),
    ({"export": {"memory": "1"}}, "export.memory must"),
    ({"ingest": {"cpu": "0.5"}}, "ingest.cpu must"),
    ({"export": {"cpu": "9"}}, "export.cpu must"),
    ({"database": {"availability_type": "HA"}}, "database.availability_type must"),
    ({"database": {"tier": "n1-standard-2"}}, "database.tier must"),
    ({"database": {"version": "MYSQL_8_0"}}, "database.version must"),
    ({"database": {"disk_size_gb": 5}}, "database.disk_size_gb must"),
    ({"database": {"name": "Ess-DB"}}, "database.name must"),
    ({"database": {"backup_start_time": "24:00"}}, "database.backup_start_time must"),
    ({"database": {"backup_retained_count": 0}}, "database.backup_retained_count must"),
    ({"database": {"pitr_log_retention_days": 8}}, "database.pitr_log_retention_days must"),
    ({"database": {"max_connections": 10}}, "database.max_connections must"),
    ({"database": {"external_dsn_secret": {"replica": "a b"}}}, "database.external_dsn_secret"),
    ({"push_ack_deadline_seconds": 601}, "push_ack_deadline_seconds must"),
    ({"max_delivery_attempts": 101}, "max_delivery_attempts must"),
    ({"max_delivery_attempts": 4}, "max_delivery_attempts must"),
    ({"backlog_alert_age_seconds": {"dead_letter": 604800}}, "backlog_alert_age_seconds values"),
]


@pytest.mark.parametrize("values,message", BAD, ids=[json.dumps(v) for v, _ in BAD])
def test_validation_rejects(module_vars, values, message):
    proc = _plan(module_vars, values)
    errors = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0, f"{values} was accepted"
    assert message in errors, errors[-1500:]


@pytest.mark.parametrize("values", [
    {"ingest": {"cpu": "0.5", "concurrency": 1}},
    {"ingest": {"min_instances": 0, "max_instances": 1000, "concurrency": 1000,
                "timeout_seconds": 3600, "memory": "32Gi", "cpu": "8"}},
    {"database": {"tier": "db-g1-small", "availability_type": "REGIONAL",
                  "external_dsn_secret": {"main": "ess-main-dsn"}}},
    {"database": {"tier": "db-custom-4-15360", "replica_region": "europe-west1",
                  "replica_zone": "europe-west1-b"}},
])
def test_validation_accepts(module_vars, values):
    proc = _plan(module_vars, values)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dev_example_inputs(tmp_path):
    """examples/dev's module call, against the module's variables: types, validations, values."""
    mod = tmp_path / "infra"
    example = mod / "examples" / "dev"
    example.mkdir(parents=True)
    shutil.copy(INFRA / "variables.tf", mod / "variables.tf")
    (mod / "outputs.tf").write_text("".join(
        f'output "{n}" {{\n  value = var.{n}\n}}\n' for n in OBJECTS))
    # variables and the module call only: the providers (versions.tf) and outputs need the cloud
    for name in ("main.tf", "variables.tf"):
        shutil.copy(INFRA / "examples" / "dev" / name, example / name)
    (example / "outputs.tf").write_text("".join(
        f'output "{n}" {{\n  value = module.ess.{n}\n}}\n' for n in OBJECTS))
    assert _tf(example, "init").returncode == 0
    wheel = "/abs/build/ess_pipeline-0.1.0-py3-none-any.whl"
    out = _outputs(example, "-var", "project_id=p", "-var", f"wheel_path={wheel}")
    assert out["artifacts"]["wheel"] == wheel
    for key in ("ingest_zip", "export_zip"):
        path = out["artifacts"][key]
        assert re.fullmatch(r"\./\.\./\.\./\.\./build/(ingest|export)\.zip", path), path
    # the example's paths are relative to infra/examples/dev and name the repository's build/
    assert (INFRA / "examples" / "dev" / out["artifacts"]["ingest_zip"]).resolve() == \
        ROOT / "build" / "ingest.zip"
    assert out["ingest"] == {**DEFAULTS["ingest"], "min_instances": 0, "max_instances": 3}
    assert out["export"] == {**DEFAULTS["export"], "max_instances": 1}
    db = out["database"]
    assert db["tier"] == "db-g1-small" and db["deletion_protection"] is False
    assert db["replica_zone"] == "asia-northeast3-b"
    assert db["external_dsn_secret"] == {"main": None, "replica": None}
