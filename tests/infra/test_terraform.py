"""Static checks of infra/: HCL parses, variables typed and described, checkov clean with
justified skips, references resolve."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from tfmodule import (
    CHECKOV,
    EXAMPLE,
    INFRA,
    ROOT,
    ROOT_TF,
    TF_FILES,
    parse,
)

# --- parse / variables -----------------------------------------------------------------------

def test_tf_files_found():
    names = {p.name for p in ROOT_TF}
    for required in ("versions.tf", "variables.tf", "outputs.tf", "main.tf", "apis.tf",
                     "network.tf", "iam.tf", "pubsub.tf", "functions.tf", "sql.tf", "storage.tf",
                     "scheduler.tf", "collector_vm.tf", "monitoring.tf", "secrets.tf"):
        assert required in names
    assert (EXAMPLE / "main.tf").is_file()


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_tf_parses(path):
    assert isinstance(parse(path), dict)


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_variables_typed_and_described(path):
    for block_ in parse(path).get("variable", []):
        for name, body in block_.items():
            assert body.get("type"), f"{path.name}: variable {name} has no type"
            assert len(str(body.get("description", ""))) >= 10, f"{path.name}: {name} undescribed"


def test_provider_versions_pinned():
    tf = parse(INFRA / "versions.tf")["terraform"][0]
    providers = tf["required_providers"][0]
    for name in ("google", "google-beta", "time", "random"):
        version = providers[name]["version"]
        assert ">=" in version and "<" in version, f"{name} not pinned to a range: {version}"
    assert tf["required_version"]
    assert "archive" not in providers, "unused provider"
    # >= 6.13: disable_metric_validation; 5.x has a VPC-connector permadiff
    assert providers["google"]["version"].startswith(">= 6.13"), providers["google"]


def test_example_calls_module(root):
    d = parse(EXAMPLE / "main.tf")
    mod = d["module"][0]["ess"]
    assert mod["source"] == "../.."
    required = {n for n, b in root["variable"].items() if "default" not in b}
    assert required <= set(mod), f"example misses required inputs {required - set(mod)}"
    assert set(mod) - {"source"} <= set(root["variable"]), "example passes unknown inputs"


def test_example_sites_yaml_is_valid():
    import jsonschema
    schema = json.loads((ROOT / "schemas" / "sites.schema.json").read_text())
    jsonschema.validate(yaml.safe_load((EXAMPLE / "sites.yaml").read_text()), schema)


# --- hygiene ---------------------------------------------------------------------------------

IPV4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(/\d{1,2})?(?![\w.])")


def test_no_ip_literals_outside_variable_cidr_defaults():
    files = TF_FILES + sorted((INFRA / "templates").glob("*"))
    files.append(ROOT / "collector/systemd/ess-collector.service")
    for path in files:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for m in IPV4.finditer(line):
                ok = m.group(2) and path.name == "variables.tf" and "default" in line
                assert ok, f"{path.relative_to(ROOT)}:{lineno}: IP literal {m.group(0)}"


def test_no_secrets_or_keys_in_code(root):
    assert "google_service_account_key" not in root["resource"]
    # secret values stay out of Terraform state
    assert "google_secret_manager_secret_version" not in root["resource"]
    for path in TF_FILES:
        body = path.read_text()
        assert not re.search(r"(password|private_key)\s*=", body), path
        assert "BEGIN PRIVATE KEY" not in body


def test_no_primitive_or_authoritative_iam(root):
    for rtype in root["resource"]:
        assert not rtype.endswith(("_iam_binding", "_iam_policy")), f"authoritative IAM {rtype}"
    alltext = "\n".join(p.read_text() for p in TF_FILES)
    assert not re.search(r"roles/(owner|editor|viewer)\b", alltext)


# --- checkov ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkov(needs_service) -> str:
    """The checkov `make checkov` installs (not `make install`)."""
    assert CHECKOV.is_file(), f"{CHECKOV} missing: run `make checkov` (make test does)"
    return str(CHECKOV)


def test_checkov_is_installed(checkov):
    assert checkov


def test_checkov_reports_no_failures(checkov):
    proc = subprocess.run(
        [checkov, "-d", str(INFRA), "--quiet", "--compact", "--skip-download",
         "--output", "json"], capture_output=True, text=True, timeout=900)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = []
    passed = 0
    for rep in reports:
        if not isinstance(rep, dict) or "summary" not in rep:
            continue
        passed += rep["summary"].get("passed", 0)
        for f in rep.get("results", {}).get("failed_checks", []):
            failed.append(f"{f['check_id']} {f['resource']} {f.get('file_path')}")
    assert not failed, "checkov failures:\n" + "\n".join(failed)
    assert passed > 50, "checkov scanned suspiciously little"


SKIP = re.compile(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def test_checkov_skips_are_justified():
    skips = 0
    for path in TF_FILES:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            m = SKIP.search(line)
            if m:
                skips += 1
                assert re.fullmatch(r"CKV2?_[A-Z]+_\d+", m.group(1)), f"{path}:{lineno}"
                reason = (m.group(2) or "").strip()
                assert len(reason) >= 30, f"{path.name}:{lineno}: skip {m.group(1)} needs a reason"
    assert skips <= 10, "too many skips: fix the resources instead"
