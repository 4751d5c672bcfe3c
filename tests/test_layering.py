"""Import layering and code size, checked over the AST of every module (docs/architecture.md).

- `ess` (schemas/ess) imports nothing of the project;
- `ess_collector` and `ess_functions` import only `ess` (not each other);
- nothing but the local stack, the benchmarks and the tests imports `ess_local` or `tests.bench`;
- modules stay under 400 lines, functions under 60 unless their docstring says why (product,
  local stack, packaging, benchmarks and the tests themselves).
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("ess", "ess_collector", "ess_functions", "ess_local", "tests")
# layer -> the project packages it may import (besides itself)
ALLOWED = {
    "ess": set(),
    "ess_collector": {"ess"},
    "ess_functions": {"ess"},
    "function_main": {"ess", "ess_functions"},
    "ess_local": {"ess", "ess_collector", "ess_functions", "bench"},
    "bench": {"ess", "ess_collector", "ess_functions", "ess_local", "tests"},
}
SOURCES = {
    "ess": ["schemas/ess"],
    "ess_collector": ["collector/ess_collector"],
    "ess_functions": ["functions/ess_functions"],
    "function_main": ["functions/*/main.py"],
    "ess_local": ["infra/local/ess_local"],
    "bench": ["tests/bench"],
}
PRODUCT = ("ess", "ess_collector", "ess_functions", "function_main")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def _files(patterns: list[str]) -> list[Path]:
    out: list[Path] = []
    for pattern in patterns:
        if "*" in pattern or (ROOT / pattern).is_file():
            out += sorted(ROOT.glob(pattern))
        elif (ROOT / pattern).is_dir():
            out += sorted((ROOT / pattern).rglob("*.py"))
    return out


def _top(name: str) -> str:
    """The project package a dotted import names ("tests.bench" counts as its own layer)."""
    if name == "tests.bench" or name.startswith("tests.bench."):
        return "bench"
    return name.split(".")[0]


def imported(source: str) -> set[str]:
    """Absolute module names a module imports (relative imports stay inside its package)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def violations(layer: str, source: str, where: str = "<string>") -> list[str]:
    """Each import in `source` that `layer` may not make."""
    bad = []
    for name in sorted(imported(source)):
        top = _top(name)
        if (top in PROJECT or top == "bench") and top != layer and top not in ALLOWED[layer]:
            bad.append(f"{where}: {layer} imports {name}")
    return bad


def test_the_sources_are_found():
    for layer, patterns in SOURCES.items():
        if layer != "bench":
            assert _files(patterns), f"no modules for layer {layer}: {patterns}"


def test_no_layer_is_crossed():
    bad = []
    for layer, patterns in SOURCES.items():
        for path in _files(patterns):
            bad += violations(layer, path.read_text(), str(path.relative_to(ROOT)))
    assert not bad, "layering violated:\n" + "\n".join(bad)


@pytest.mark.parametrize("layer, source", [
    ("ess", "from ess_collector.config import load\n"),
    ("ess", "import ess_local.postgres\n"),
    ("ess", "from tests.conftest import stack_dir\n"),
    ("ess_functions", "from ess_collector import sender\n"),
    ("ess_collector", "import ess_functions.ingest\n"),
    ("ess_functions", "from ess_local.run import main\n"),
    ("ess_collector", "from tests.bench import common\n"),
    ("function_main", "import ess_local\n"),
    ("ess_local", "from tests.conftest import stack_dir\n"),
])
def test_a_wrong_import_is_caught(layer, source):
    assert violations(layer, source), (layer, source)


def test_allowed_imports_pass():
    assert not violations("ess_functions", "from ess.codec import Frame\nfrom . import gcs\n")
    assert not violations("ess_local",
                          "from ess_functions.archive.layout import write\nimport tests.bench\n")
    assert not violations("bench", "from ess_local.postgres import Cluster\n")
    assert not violations("ess", "import numpy\nfrom .regmap import load_map\n")


def oversized(source: str, where: str = "<string>") -> list[str]:
    """Modules over 400 lines, and functions over 60 whose docstring does not say why."""
    found = []
    if source.count("\n") + 1 > MAX_MODULE_LINES:
        found.append(f"{where}: {source.count(chr(10)) + 1} lines")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            doc = ast.get_docstring(node) or ""
            if length > MAX_FUNCTION_LINES and "long because" not in doc.lower():
                found.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    return found


# every Python module the size rule covers: product, local stack, packaging, benchmarks, tests
SIZED = [*(p for layer in PRODUCT for p in SOURCES[layer]), "infra/local/ess_local",
         "infra/package.py", "tests"]


def test_modules_and_functions_are_small():
    found = []
    for path in _files(SIZED):
        found += oversized(path.read_text(), str(path.relative_to(ROOT)))
    assert not found, ("over the size limits (a function may run longer when its docstring says "
                       "'long because ...'):\n" + "\n".join(found))


def test_the_size_check_covers_every_tree():
    sized = {p.relative_to(ROOT) for p in _files(SIZED)}
    for where in ("infra/local/ess_local/run.py", "tests/bench/ingest.py",
                  "tests/export/test_export_gcs.py", "tests/test_layering.py"):
        assert Path(where) in sized, where


def test_the_size_check_flags_a_long_function():
    body = "".join(f"    x{i} = {i}\n" for i in range(70))
    assert oversized(f"def f():\n{body}")
    assert not oversized(f'def f():\n    """Long because it is a table."""\n{body}')
    assert oversized("x = 1\n" * 401)


def test_the_wheel_lists_every_product_package_and_no_other():
    """pyproject.toml names the wheel's packages one by one: a new subpackage must be added."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = config["package-dir"]
    found = {"ess.model"}
    for top in ("ess", "ess_collector", "ess_functions"):
        base = ROOT / dirs[top]
        found |= {".".join((top, *p.parent.relative_to(base).parts))
                  for p in base.rglob("__init__.py")}
    assert set(config["packages"]) == found
    assert dirs["ess.model"] == "schemas" and "ess_local" not in str(config)
