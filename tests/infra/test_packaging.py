"""Deployment artifacts and the README's Deploy section against the code."""

from __future__ import annotations

import re
import sys
import zipfile

import pytest
from tfmodule import (
    EXAMPLE,
    INFRA,
    ROOT,
    object_attrs,
    parse,
)

# --- packaging -------------------------------------------------------------------------------

def _package_module():
    sys.path.insert(0, str(INFRA))
    try:
        import package  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    return package


def test_function_requirements_pinned():
    package = _package_module()
    for fn in ("ingest", "export"):
        reqs = package.check_requirements(ROOT / "functions" / fn / "requirements.txt")
        names = {re.split(r"[=\[]", r)[0].lower() for r in reqs}
        assert {"functions-framework", "pg8000", "cloud-sql-python-connector"} <= names


def test_function_archive_layout(tmp_path):
    package = _package_module()
    fake = tmp_path / "repo"
    for rel, body in {
        "functions/ingest/main.py": "def ingest(event): pass\n",
        "functions/ingest/requirements.txt": "pg8000==1.31.6\n",
        "functions/export/main.py": "def export(request): pass\n",
        "functions/export/requirements.txt": "pg8000==1.31.6\n",
        "functions/ess_functions/__init__.py": "",
        "functions/ess_functions/__pycache__/x.pyc": "",
        "schemas/ess/__init__.py": "",
        "schemas/ess/paths.py": "",
        "schemas/maps/default.yaml": "id: default\n",
        "schemas/sites.schema.json": "{}",
    }.items():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(body)
    out = tmp_path / "build"
    built = package.package(fake, out, wheel=False)
    assert {p.name for p in built} == {"ingest.zip", "export.zip"}
    names = set(zipfile.ZipFile(out / "ingest.zip").namelist())
    assert {"main.py", "requirements.txt", "ess/__init__.py", "ess/paths.py",
            "ess_functions/__init__.py", "ess/model/maps/default.yaml",
            "ess/model/sites.schema.json"} <= names
    assert not any("__pycache__" in n for n in names)
    first = (out / "ingest.zip").read_bytes()
    package.package(fake, out, wheel=False)
    assert (out / "ingest.zip").read_bytes() == first, "archives must be deterministic"
    (fake / "functions/export/requirements.txt").write_text("pg8000>=1\n")
    with pytest.raises(SystemExit):
        package.package(fake, out, wheel=False)


def test_an_archive_refuses_another_stage(tmp_path):
    """A function whose main.py reaches into another stage's folder is not packaged."""
    package = _package_module()
    fake = tmp_path / "repo"
    for rel, body in {
        "functions/ingest/main.py": "from ess_functions.export.run import x\n",
        "functions/ingest/requirements.txt": "pg8000==1.31.6\n",
        "functions/ess_functions/__init__.py": "",
        "functions/ess_functions/export/__init__.py": "",
        "functions/ess_functions/export/run.py": "x = 1\n",
        "schemas/ess/__init__.py": "",
    }.items():
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text(body)
    with pytest.raises(SystemExit, match="export/run.py"):
        package.function_entries(fake, "ingest")


def test_makefile_targets():
    mk = (ROOT / "Makefile").read_text()
    assert re.search(r"^package:.*\n\t.*infra/package.py", mk, re.M)
    assert re.search(r"^test:.*\bcheckov\b", mk, re.M)
    assert ".venv-checkov" in mk
    assert re.search(r'^test-unit: install\n\t.*pytest .*-m "not service"', mk, re.M)
    # quiet installs: the editable notice silenced, the egg-info setuptools leaves removed
    install = mk.split("\n$(STAMP):", 1)[1].split("\n\n", 1)[0]
    assert 'PYTHONWARNINGS="ignore:Editable installation"' in install
    assert "rm -rf *.egg-info infra/local/*.egg-info" in install


# --- README ----------------------------------------------------------------------------------

def _deploy_section() -> str:
    readme = (ROOT / "README.md").read_text()
    assert "\n## Deploy" in readme, "README has no ## Deploy section"
    return readme.split("\n## Deploy", 1)[1].split("\n## ", 1)[0]


def test_readme_deploy_matches_code(root):
    section = _deploy_section()
    example_vars = {n for b in parse(EXAMPLE / "variables.tf").get("variable", []) for n in b}
    known = set(root["variable"]) | example_vars
    rows = re.findall(r"^\|\s*(`[^|]+`)\s*\|", section, re.M)
    cells = {n for r in rows for n in re.findall(r"`([a-z_][a-z0-9_.]*)`", r)}
    for n in {c for c in cells if "." in c}:
        obj, attr = n.split(".", 1)
        assert attr.split(".")[0] in object_attrs(root, obj), f"README names unknown {n}"
    named = {c for c in cells if "." not in c}
    named |= set(re.findall(r"-var[ =]+'?([a-z_][a-z0-9_]*)=", section))
    assert named, "Deploy section names no variables"
    assert named <= known, f"README names unknown variables {named - known}"
    required = {n for n, b in root["variable"].items() if "default" not in b}
    for n in required:
        assert f"`{n}`" in section or f"{n}=" in section, f"required variable {n} not in README"
    assert "make package" in section
    assert "terraform -chdir=infra/examples/dev init" in section
    assert re.search(r"terraform -chdir=infra/examples/dev apply .*-var project_id=", section)
    assert "cost" in section.lower()
