"""Import layering and code size, checked over the AST of every module (docs/architecture.md).

- `ess` (schemas/ess) imports nothing of the project;
- `ess_collector` and `ess_functions` import only `ess` (not each other);
- nothing but the local stack, the benchmarks and the tests imports `ess_local` or `tests.bench`;
- inside a package, folders are layers too (FOLDERS): a stage of `ess_functions` imports no other
  stage, the object store no stage, `ess.wire` nothing of `ess`, `ess.decode` no database code;
- modules stay under 400 lines, functions under 60 unless their docstring says why (product,
  local stack, packaging, benchmarks and the tests themselves).
"""

from __future__ import annotations

import ast
import sys
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


# folder (a dotted prefix) -> the other folders of its package it may import; a module outside
# every folder listed here (e.g. ess_functions/cli.py, which registers the stages) is free.
FOLDERS = {
    "ess.wire": set(),
    "ess.decode": {"ess.errors", "ess.regmap", "ess.wire"},
    "ess.frame_checks": {"ess.codec", "ess.errors", "ess.regmap", "ess.sites", "ess.wire"},
    "ess_functions.objstore": set(),
    "ess_functions.ingest": {"ess_functions.objstore", "ess_functions.trace"},
    "ess_functions.export": {"ess_functions.objstore", "ess_functions.trace"},
    "ess_functions.archive": {"ess_functions.objstore"},
}
PACKAGE_ROOTS = {"ess": "schemas/ess", "ess_functions": "functions/ess_functions"}


def module_name(path: Path) -> tuple[str, bool]:
    """The dotted name of a product module file, and whether it is a package's __init__."""
    for top, folder in PACKAGE_ROOTS.items():
        base = ROOT / folder
        if path.is_relative_to(base):
            parts = (top, *path.relative_to(base).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            return ".".join(parts[:-1] if is_package else parts), is_package
    raise ValueError(path)


def absolute_imports(source: str, module: str, is_package: bool) -> set[str]:
    """Every module a module imports, relative imports resolved, as infra/package.py resolves
    them when it decides what a function archive holds."""
    sys.path.insert(0, str(ROOT / "infra"))
    try:
        import package  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    return package.module_imports(ast.parse(source), module, is_package)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def folder_violations(module: str, is_package: bool, source: str) -> list[str]:
    """Each import of `module` into a folder of its package its own folder may not import."""
    own = next((f for f in FOLDERS if _within(module, f)), None)
    if own is None:
        return []
    top = module.split(".")[0]
    bad = []
    for name in sorted(absolute_imports(source, module, is_package)):
        if name.split(".")[0] != top or name == top or _within(name, own):
            continue
        if not any(_within(name, ok) for ok in FOLDERS[own]):
            bad.append(f"{module} imports {name}")
    return bad


def test_no_folder_is_crossed():
    bad = []
    for folder in PACKAGE_ROOTS.values():
        for path in sorted((ROOT / folder).rglob("*.py")):
            bad += folder_violations(*module_name(path), path.read_text())
    assert not bad, "folder layering violated:\n" + "\n".join(bad)


def test_every_folder_rule_names_modules_that_exist():
    for folder in (*FOLDERS, *(ok for oks in FOLDERS.values() for ok in oks)):
        top, *rest = folder.split(".")
        base = ROOT / PACKAGE_ROOTS[top] / Path(*rest)
        assert base.is_dir() or base.with_suffix(".py").is_file(), folder


@pytest.mark.parametrize("module, is_package, source", [
    ("ess_functions.ingest.ingestor", False, "from ..export.run import export_jobs\n"),
    ("ess_functions.export.run", False, "from ess_functions.ingest import pool\n"),
    ("ess_functions.archive.redecode", False, "from ..ingest.checks import FrameChecks\n"),
    ("ess_functions.objstore.gcs", False, "from ..export import manifest\n"),
    ("ess.wire.times", False, "from ..codec import Frame\n"),
    ("ess.decode", True, "from ..db.writer import write_frames\n"),
])
def test_a_folder_crossing_is_caught(module, is_package, source):
    assert folder_violations(module, is_package, source), (module, source)


def test_allowed_folder_imports_pass():
    assert not folder_violations("ess_functions.export.http", False,
                                 "from ..objstore import GcsStore\nfrom ..trace import t\n"
                                 "from .run import export_jobs\nfrom ess.db import pg\n")
    assert not folder_violations("ess.decode", True, "from .decoder import Decoder\n")
    assert not folder_violations("ess_functions.cli", False, "from .archive import cli\n")


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
    """pyproject.toml names the wheel's packages one by one: a new subpackage must be added, and
    each folder of schema data whose files ship (setuptools warns "Package would be ignored"
    about a data folder it is not told is a package)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = config["package-dir"]
    data = config["package-data"]["ess.model"]
    found = {"ess.model"} | {f"ess.model.{g.split('/')[0]}" for g in data if "/" in g}
    for top in ("ess", "ess_collector", "ess_functions"):
        base = ROOT / dirs[top]
        found |= {".".join((top, *p.parent.relative_to(base).parts))
                  for p in base.rglob("__init__.py")}
    assert set(config["packages"]) == found
    assert dirs["ess.model"] == "schemas" and "ess_local" not in str(config)
