"""Build the deployment artifacts Terraform uploads (`make package`).

build/ess_pipeline-<version>-py3-none-any.whl  the project wheel, installed on the collector VM
build/ess-schemas.tar.gz                       register maps, JSON Schemas, migrations, SQL
                                               (data files live outside the packages; the VM
                                               points ESS_SCHEMAS_DIR at them)
build/ingest.zip, build/export.zip             Cloud Run function sources

Function archives are self-contained: the function's `main.py` and pinned `requirements.txt`
(third-party dependencies only) plus copies of the project's source packages `ess` and
`ess_functions` and the schema data files, laid out as in the repository relative to the
`ess` package (so `ess.paths.SCHEMAS_DIR` resolves to the archive root). Copying the sources
rather than installing the wheel keeps the Cloud Build step to a plain `pip install -r
requirements.txt` from PyPI and does not drag the collector's dependencies into the functions.
Archives are deterministic (sorted entries, fixed timestamps), so Terraform's content-addressed
object names change only when the content does.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = {"ingest": "ingest", "export": "export"}  # archive name -> functions/<folder>
PACKAGES = {"ess": "schemas/ess", "ess_functions": "functions/ess_functions"}
DATA = ["maps", "migrations", "sql", "register-map.schema.json", "sites.schema.json"]
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


def function_entries(root: Path, folder: str) -> dict[str, Path]:
    """Archive name -> source file for one function."""
    src = root / "functions" / folder
    entries: dict[str, Path] = {}
    for name in ("main.py", "requirements.txt"):
        if not (src / name).is_file():
            raise SystemExit(f"missing {src / name}")
        entries[name] = src / name
    check_requirements(src / "requirements.txt")
    for pkg, rel in PACKAGES.items():
        base = root / rel
        if not (base / "__init__.py").is_file():
            raise SystemExit(f"missing package {base}")
        for f in _files(base):
            entries[f"{pkg}/{f.relative_to(base).as_posix()}"] = f
    schemas = root / "schemas"
    for item in DATA:
        p = schemas / item
        if not p.exists():
            continue
        for f in _files(p):
            entries[f.relative_to(schemas).as_posix()] = f
    return entries


def write_zip(entries: dict[str, Path], out: Path) -> None:
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, entries[name].read_bytes())
    tmp.replace(out)


def write_schemas_tar(root: Path, out: Path) -> None:
    schemas = root / "schemas"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        for item in DATA:
            p = schemas / item
            if not p.exists():
                continue
            for f in _files(p):
                info = tarfile.TarInfo(f.relative_to(schemas).as_posix())
                data = f.read_bytes()
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tf.addfile(info, io.BytesIO(data))
    out.write_bytes(buf.getvalue())


def build_wheel(root: Path, out_dir: Path) -> Path:
    for old in out_dir.glob("ess_pipeline-*.whl"):
        old.unlink()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(out_dir), str(root)], check=True)
    wheels = sorted(out_dir.glob("ess_pipeline-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel in {out_dir}, found {wheels}")
    return wheels[0]


def package(root: Path, out_dir: Path, wheel: bool = True) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    built = []
    if wheel:
        built.append(build_wheel(root, out_dir))
    tar = out_dir / "ess-schemas.tar.gz"
    write_schemas_tar(root, tar)
    built.append(tar)
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
