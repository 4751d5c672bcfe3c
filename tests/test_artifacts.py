"""What `make package` builds holds only what production runs (infra/package.py).

Each function archive: its main.py, requirements, `ess` with its data, and only the
`ess_functions` modules that function imports, all from its own stage's folder and the object
store (`STAGES` in infra/package.py; never a cli.py). The wheel: the shipped packages and the
map data, never the local stack, tests or benchmarks.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = re.compile(r"(^|/)(bench|push_load|ess_local|tests?|conftest|simulator)([/_.]|$)")


def _package():
    """infra/package.py, the builder: its STAGES say which folders each archive may hold."""
    sys.path.insert(0, str(ROOT / "infra"))
    try:
        import package  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    return package


# what a build may leave in the source tree: nothing (build/ is an output folder of its own)
LEFTOVERS = ("*.egg-info", "infra/local/*.egg-info", "build/lib", "build/bdist.*")


def _leftovers() -> set[Path]:
    return {p for pattern in LEFTOVERS for p in ROOT.glob(pattern)}


@pytest.fixture(scope="module")
def build(tmp_path_factory, needs_service) -> Path:
    """What infra/package.py builds, quietly and leaving nothing in the source tree. The full
    tier: `pip wheel` fetches the build backend from the package index (build isolation) and
    takes seconds."""
    out = tmp_path_factory.mktemp("build")
    before = _leftovers()
    proc = subprocess.run([sys.executable, str(ROOT / "infra" / "package.py"), "--out",
                           str(out)], check=True, cwd=ROOT, capture_output=True, text=True)
    assert "would be ignored" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    assert _leftovers() <= before, _leftovers() - before
    return out


def _names(path: Path) -> list[str]:
    return zipfile.ZipFile(path).namelist()


@pytest.mark.parametrize("function", ["ingest", "export"])
def test_function_archive_holds_only_what_the_function_runs(build, function):
    names = _names(build / f"{function}.zip")
    assert {"main.py", "requirements.txt", "ess/__init__.py", "ess/paths.py",
            "ess/model/maps/default.yaml", "ess/model/sites.schema.json",
            "ess_functions/__init__.py"} <= set(names)
    assert [n for n in names if FORBIDDEN.search(n)] == []
    assert _package().outside_stage(function, names) == []
    own = "ess_functions/ingest/ingestor.py" if function == "ingest" else \
        "ess_functions/export/http.py"
    assert own in names and "ess_functions/objstore/__init__.py" in names


@pytest.mark.parametrize("function, name", [
    ("ingest", "ess_functions/export/run.py"), ("ingest", "ess_functions/archive/layout.py"),
    ("export", "ess_functions/ingest/ingestor.py"), ("export", "ess_functions/export/cli.py"),
    ("export", "ess_functions/cli.py"),
])
def test_the_folder_rule_flags_another_stage(function, name):
    outside = _package().outside_stage
    assert outside(function, [name]) == [name]
    assert outside(function, [f"ess_functions/{function}/x.py", "ess_functions/trace.py",
                              "ess_functions/objstore/gcs.py", "ess/decode/decoder.py"]) == []


def test_wheel_has_the_map_data_and_no_local_stack(build):
    (wheel,) = build.glob("ess_pipeline-*.whl")
    names = _names(wheel)
    assert "ess/model/maps/default.yaml" in names
    assert "ess_functions/ingest/ingestor.py" in names
    assert [n for n in names if re.search(r"(^|/)(ess_local|tests|bench|push_load)[/_.]", n)
            ] == []
