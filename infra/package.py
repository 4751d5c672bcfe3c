"""Build the deployment artifacts Terraform uploads (`make package`).

build/ess_pipeline-<version>-py3-none-any.whl  the project wheel, installed on the collector VM
                                               and by the database job with --no-deps over
                                               collector/requirements.txt (pinned; its data
                                               ships inside, as ess/model/)
build/ingest.zip, build/export.zip             Cloud Run function sources

Each function archive holds only what that function runs: its `main.py` and pinned
`requirements.txt` (third-party dependencies only), the `ess` package with its data under
`ess/model/` (as in the wheel), and the `ess_functions` modules that `main.py` imports, directly
or through other modules (found by walking the imports' syntax trees, function-level imports
included). Copying the sources rather than installing the wheel keeps the Cloud Build step to a
plain `pip install -r requirements.txt` from PyPI and does not drag the collector's dependencies
into the functions. Archives are deterministic (sorted entries, fixed timestamps), so
Terraform's content-addressed object names change only when the content does.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = {"ingest": "ingest", "export": "export"}  # archive name -> functions/<folder>
FUNCTIONS_PKG = "ess_functions"  # copied module by module, as far as main.py imports it
# The folders of ess_functions an archive may take modules from: the function's own stage and
# the object store (and the package's top-level modules). Never a command-line module.
STAGES = {"ingest": ("ingest", "objstore"), "export": ("export", "objstore")}
DATA = ["maps", "sql", "bigquery", "register-map.schema.json", "sites.schema.json"]
DATA_PREFIX = "ess/model/"       # where ess.paths finds the data inside an archive
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
SKIP = re.compile(r"(__pycache__|\.pyc$|\.pyo$|\.egg-info|\.DS_Store)")
PIN = re.compile(r"^[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-]+(\s*;.*)?$")


def _files(base: Path) -> list[Path]:
    if base.is_file():
        return [base]
    return sorted(p for p in base.rglob("*") if p.is_file() and not SKIP.search(str(p)))


def check_requirements(path: Path) -> list[str]:
    """Every requirement must be pinned with ==; returns the requirement lines."""
    reqs = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not PIN.match(line):
            raise SystemExit(f"{path}: not pinned with ==: {raw!r}")
        reqs.append(line)
    return reqs


def module_imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Dotted names a module imports (relative imports resolved), with `from X import name`
    also giving `X.name` (it may be a submodule)."""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = parts[:len(parts) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
    return names


def _module_file(pkg_dir: Path, name: str) -> Path | None:
    """The file of `ess_functions[.sub...]` in the source tree, or None."""
    rel = Path(*name.split(".")[1:])
    for cand in (pkg_dir / rel / "__init__.py", (pkg_dir / rel).with_suffix(".py")):
        if cand.is_file():
            return cand
    return None


def imported_modules(main: Path, pkg_dir: Path, pkg: str = FUNCTIONS_PKG) -> dict[str, Path]:
    """Every module of `pkg` that `main` needs: archive name -> source file."""
    found: dict[str, Path] = {}
    todo = [(main, "__main__", False)]
    while todo:
        path, module, is_package = todo.pop()
        for name in sorted(module_imports(ast.parse(path.read_text()), module,
                                          is_package)):
            if name.split(".")[0] != pkg:
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):    # the module and every package above it
                sub = ".".join(parts[:i])
                f = _module_file(pkg_dir, sub)
                arcname = f.relative_to(pkg_dir.parent).as_posix() if f else ""
                if f is not None and arcname not in found:
                    found[arcname] = f
                    todo.append((f, sub, f.name == "__init__.py"))
    return found


def outside_stage(folder: str, arcnames) -> list[str]:
    """The `ess_functions` modules among `arcnames` that function `folder` may not ship."""
    allowed = STAGES.get(folder, (folder,))
    out = []
    for name in sorted(arcnames):
        parts = name.split("/")
        if parts[0] == FUNCTIONS_PKG and (parts[-1] == "cli.py" or (
                len(parts) > 2 and parts[1] not in allowed)):
            out.append(name)
    return out


def function_entries(root: Path, folder: str) -> dict[str, Path]:
    """Archive name -> source file for one function."""
    src = root / "functions" / folder
    entries: dict[str, Path] = {}
    for name in ("main.py", "requirements.txt"):
        if not (src / name).is_file():
            raise SystemExit(f"missing {src / name}")
        entries[name] = src / name
    check_requirements(src / "requirements.txt")
    ess, functions = root / "schemas" / "ess", root / "functions" / FUNCTIONS_PKG
    for base in (ess, functions):
        if not (base / "__init__.py").is_file():
            raise SystemExit(f"missing package {base}")
    for f in _files(ess):
        entries[f"ess/{f.relative_to(ess).as_posix()}"] = f
    entries[f"{FUNCTIONS_PKG}/__init__.py"] = functions / "__init__.py"
    modules = imported_modules(src / "main.py", functions)
    strays = outside_stage(folder, modules)
    if strays:
        raise SystemExit(f"functions/{folder}/main.py pulls in modules outside its stage "
                         f"folders {STAGES.get(folder, ())}: {', '.join(strays)}")
    entries.update(modules)
    for rel, f in _data_files(root):
        entries[DATA_PREFIX + rel] = f
    return entries


def _data_files(root: Path) -> list[tuple[str, Path]]:
    """(path relative to the data root, file) for the schema data shipped with `ess`."""
    schemas = root / "schemas"
    out = []
    for item in DATA:
        p = schemas / item
        if p.exists():
            out += [(f.relative_to(schemas).as_posix(), f) for f in _files(p)]
    return out


def write_zip(entries: dict[str, Path], out: Path) -> None:
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, entries[name].read_bytes())
    tmp.replace(out)



# What the wheel is built from (pyproject.toml's package-dir), copied to a scratch directory
WHEEL_SOURCES = ("pyproject.toml", "schemas", "collector", "functions")


def build_wheel(root: Path, out_dir: Path) -> Path:
    """The project wheel, built from a fresh copy of its sources in a scratch directory:
    setuptools leaves `build/lib` and `*.egg-info` where it builds (and reuses `build/lib`, so a
    deleted module could ship); the source tree gets neither."""
    for old in out_dir.glob("ess_pipeline-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="ess-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".*")
        for name in WHEEL_SOURCES:
            if (root / name).is_dir():
                shutil.copytree(root / name, src / name, ignore=ignore)
            else:
                shutil.copy2(root / name, src / name)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--wheel-dir", str(out_dir.resolve()), str(src)], check=True)
    wheels = sorted(out_dir.glob("ess_pipeline-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel in {out_dir}, found {wheels}")
    return wheels[0]


def package(root: Path, out_dir: Path, wheel: bool = True) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    built = []
    if wheel:
        # the VM and the database job install the wheel --no-deps over these pins
        check_requirements(root / "collector" / "requirements.txt")
        built.append(build_wheel(root, out_dir))
    for archive, folder in FUNCTIONS.items():
        out = out_dir / f"{archive}.zip"
        write_zip(function_entries(root, folder), out)
        built.append(out)
    return built


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "build", help="output directory")
    ap.add_argument("--no-wheel", action="store_true", help="only the function archives")
    ap.add_argument("--clean", action="store_true", help="remove the output directory first")
    args = ap.parse_args(argv)
    if args.clean and args.out.exists():
        shutil.rmtree(args.out)
    for path in package(ROOT, args.out, wheel=not args.no_wheel):
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
              f"  {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
