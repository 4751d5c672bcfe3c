"""Every google_* resource and data block in infra/ against the provider's real schema.

The schema comes from the jsii assembly of PyPI's cdktf provider packages (provider_schema.py,
installed by `make provider-schema`, which `make test` runs), pinned to a provider version inside
the range infra/versions.tf declares. Checked: each argument and nested block exists at its place,
required arguments and blocks are set, blocks allowed once are given once, literal types agree.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import hcl2
import pytest
from provider_schema import PACKAGES

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
SCHEMA_DIR = Path(os.environ.get("ESS_PROVIDER_SCHEMA",
                                 ROOT / ".venv-checkov" / "provider-schema"))
TF_FILES = sorted([*INFRA.glob("*.tf"), *INFRA.glob("examples/*/*.tf")])
META = {"count", "for_each", "provider", "depends_on", "lifecycle", "provisioner", "connection"}


@pytest.fixture(scope="module")
def schemas(needs_service) -> dict[str, dict]:
    """The provider schemas `make provider-schema` downloaded (not `make install`)."""
    out = {}
    for provider, (_, _, version) in PACKAGES.items():
        path = SCHEMA_DIR / f"{provider}-{version}.json"
        assert path.is_file(), f"{path} missing: run `make provider-schema` (make test does)"
        out[provider] = json.loads(path.read_text())
    return out


def _key(k: str) -> str:
    return k.strip('"')


def _is_blocks(v) -> bool:
    return isinstance(v, list) and bool(v) and all(
        isinstance(x, dict) and x.get("__is_block__") for x in v)


def _literal_mismatch(value, typ: str) -> bool:
    if typ == "any" or (isinstance(value, str) and "${" in value):
        return False
    if isinstance(value, bool):
        return typ not in ("boolean", "string")
    if isinstance(value, int | float):
        return typ not in ("number", "string")
    if isinstance(value, str):
        if typ == "number":
            return not re.fullmatch(r'"-?[0-9.]+"', value)
        if typ == "boolean":
            return value not in ('"true"', '"false"')
        return typ in ("list", "map")
    if isinstance(value, list):
        return typ not in ("list",)
    if isinstance(value, dict):
        return typ not in ("map",)
    return False


def check_block(body: dict, schema: dict, where: str) -> list[str]:
    """Problems of one block body against its schema."""
    errors, given = [], set()
    for raw, value in body.items():
        name = _key(raw)
        if name.startswith("__") or name in META:
            continue
        if name == "dynamic":
            for dyn in value:
                for dname, dbody in dyn.items():
                    dname = _key(dname)
                    if dname.startswith("__"):
                        continue
                    given.add(dname)
                    sub = schema["blocks"].get(dname)
                    if sub is None:
                        errors.append(f"{where}: no block {dname}")
                        continue
                    for content in dbody.get("content", []):
                        errors += check_block(content, sub["block"], f"{where}.{dname}")
            continue
        given.add(name)
        if _is_blocks(value):
            sub = schema["blocks"].get(name)
            if sub is None:
                errors.append(f"{where}: no block {name}")
                continue
            if sub["max1"] and len(value) > 1:
                errors.append(f"{where}: block {name} allowed once, given {len(value)} times")
            for b in value:
                errors += check_block(b, sub["block"], f"{where}.{name}")
            continue
        attr = schema["attrs"].get(name)
        if attr is None:
            errors.append(f"{where}: no argument {name}")
        elif _literal_mismatch(value, attr["type"]):
            errors.append(f"{where}: {name} = {value!r} is not a {attr['type']}")
    for name, attr in schema["attrs"].items():
        if attr["required"] and name not in given:
            errors.append(f"{where}: required argument {name} missing")
    for name, sub in schema["blocks"].items():
        if sub["required"] and name not in given:
            errors.append(f"{where}: required block {name} missing")
    return errors


def check_file(path: Path, schemas: dict) -> list[str]:
    with path.open() as f:
        doc = hcl2.load(f)
    errors = []
    for section in ("resource", "data"):
        for entry in doc.get(section, []):
            for rtype, named in entry.items():
                rtype = _key(rtype)
                if not rtype.startswith("google_"):
                    continue
                for rname, body in named.items():
                    if _key(rname).startswith("__"):
                        continue
                    provider = "google-beta" if "google-beta" in str(body.get("provider")) \
                        else "google"
                    schema = schemas[provider][section].get(rtype)
                    where = f"{path.name}: {section} {rtype}.{_key(rname)}"
                    if schema is None:
                        errors.append(f"{where}: no such {section} in {provider}")
                    else:
                        errors += check_block(body, schema, where)
    return errors


def test_declared_range_admits_the_pinned_schema():
    versions = (INFRA / "versions.tf").read_text()
    lo, hi = re.search(r'hashicorp/google"\s*\n\s*version\s*=\s*">= ([0-9.]+), < ([0-9.]+)"',
                       versions).groups()
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    for _, _, version in PACKAGES.values():
        assert as_tuple(lo) <= as_tuple(version) < as_tuple(hi), (version, lo, hi)


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_blocks_match_provider_schema(path, schemas):
    assert check_file(path, schemas) == []


def test_mutated_file_fails(tmp_path, schemas):
    src = (INFRA / "scheduler.tf").read_text()
    unknown = tmp_path / "unknown.tf"
    unknown.write_text(src.replace("  time_zone        =", "  time_zonee       =", 1))
    assert any("no argument time_zonee" in e for e in check_file(unknown, schemas))
    missing = tmp_path / "missing.tf"
    missing.write_text(re.sub(r"\n\s*name\s*=.*", "", src, count=1))
    assert any("required argument name missing" in e for e in check_file(missing, schemas))
    twice = tmp_path / "twice.tf"
    twice.write_text(src.replace("  retry_config {", "  retry_config {\n  }\n  retry_config {", 1))
    assert any("allowed once" in e for e in check_file(twice, schemas))
    typed = tmp_path / "typed.tf"
    typed.write_text(src.replace("retry_count          = 3", 'retry_count = "three"', 1))
    assert any("is not a number" in e for e in check_file(typed, schemas))

