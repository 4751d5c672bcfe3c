"""What `make package` builds holds only what production runs (infra/package.py).

Each function archive: its main.py, requirements, `ess` with its data, and only the
`ess_functions` modules that function imports. The wheel: the shipped packages and the map data,
never the local stack, tests or benchmarks.
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
# ess_functions modules a function must not carry: the other function's, and the CLIs'.
NOT_IN = {
    "ingest": re.compile(r"^ess_functions/(export\w*|manifest|redecode\w*|avro|cli)\.py$"),
    "export": re.compile(r"^ess_functions/(ingest/.*|group_commit|redecode\w*|avro|cli)\.py$"),
}


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, str(ROOT / "infra" / "package.py"), "--out", str(out)],
                   check=True, cwd=ROOT, capture_output=True)
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
    assert [n for n in names if NOT_IN[function].search(n)] == []
    own = "ess_functions/ingest/ingestor.py" if function == "ingest" else \
        "ess_functions/export_http.py"
    assert own in names and "ess_functions/objstore.py" in names


def test_wheel_has_the_map_data_and_no_local_stack(build):
    (wheel,) = build.glob("ess_pipeline-*.whl")
    names = _names(wheel)
    assert "ess/model/maps/default.yaml" in names
    assert "ess_functions/ingest/ingestor.py" in names
    assert [n for n in names if re.search(r"(^|/)(ess_local|tests|bench|push_load)[/_.]", n)
            ] == []
