"""The google provider's schema, from the jsii assembly that PyPI's cdktf provider packages ship.

`python tests/infra/provider_schema.py OUT_DIR` (run by `make provider-schema`) downloads the
pinned wheels with pip, reads the `.jsii` inside and writes one compact JSON per provider:
{resource or data source: block}, where a block is {"attrs": {name: {"type", "required"}},
"blocks": {name: {"max1": bool, "block": block}}}. The Terraform names are taken from the
registry links in the property docs.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

# cdktf package version -> the google provider version it was generated from (its README).
PACKAGES = {
    "google": ("cdktf-cdktf-provider-google", "14.36.0", "6.37.0"),
    "google-beta": ("cdktf-cdktf-provider-google-beta", "14.36.0", "6.37.0"),
}
_LINK = re.compile(r"/docs/(resources|data-sources)/([a-z0-9_]+)(?:#([a-z0-9_]+))?")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _prop_name(prop: dict) -> str:
    m = _LINK.search(prop.get("docs", {}).get("remarks", "") + prop.get("docs", {}).get(
        "summary", ""))
    return m.group(3) if m and m.group(3) else _snake(prop["name"])


def _kind(t: dict, types: dict):
    """('block', fqn, max1) or ('attr', type name)."""
    if "primitive" in t:
        return ("attr", {"json": "any"}.get(t["primitive"], t["primitive"]))
    if "fqn" in t:
        if types.get(t["fqn"], {}).get("datatype"):
            return ("block", t["fqn"], True)
        return ("attr", "any")
    if "collection" in t:
        elem = t["collection"]["elementtype"]
        if "fqn" in elem and types.get(elem["fqn"], {}).get("datatype"):
            return ("block", elem["fqn"], False)
        return ("attr", "map" if t["collection"]["kind"] == "map" else "list")
    inner = [x for x in t["union"]["types"] if x.get("fqn") != "cdktf.IResolvable"]
    return _kind(inner[0], types) if len(inner) == 1 else ("attr", "any")


def _block(fqn: str, types: dict, depth: int = 0) -> dict:
    out = {"attrs": {}, "blocks": {}}
    for prop in types[fqn].get("properties", []):
        kind = _kind(prop["type"], types)
        name = _prop_name(prop)
        if kind[0] == "attr":
            out["attrs"][name] = {"type": kind[1], "required": not prop.get("optional")}
        elif depth < 12:
            out["blocks"][name] = {"max1": kind[2], "required": not prop.get("optional"),
                                   "block": _block(kind[1], types, depth + 1)}
    return out


def compact(assembly: dict) -> dict:
    """{"resource": {...}, "data": {...}} of one provider's assembly."""
    types = assembly["types"]
    out = {"resource": {}, "data": {}}
    for t in types.values():
        if t.get("kind") != "class" or t.get("base") not in (
                "cdktf.TerraformResource", "cdktf.TerraformDataSource"):
            continue
        m = _LINK.search(t["docs"].get("summary", ""))
        params = t.get("initializer", {}).get("parameters", [])
        config = next((p["type"]["fqn"] for p in params if p["name"] == "config"), None)
        if not m or not config:
            continue
        name = re.search(r"\s(google_[a-z0-9_]+)\}", t["docs"]["summary"])
        section = "resource" if m.group(1) == "resources" else "data"
        out[section][name.group(1) if name else "google_" + m.group(2)] = _block(config, types)
    return out


def _jsii_from_wheel(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as z:
        tgz = next(n for n in z.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(z.read(tgz))) as tar:
            return json.load(tar.extractfile("package/.jsii"))


def build(out_dir: Path) -> None:
    """Download each pinned package once and write OUT_DIR/<provider>-<version>.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for provider, (package, version, tf_version) in PACKAGES.items():
        target = out_dir / f"{provider}-{tf_version}.json"
        if target.is_file():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                            f"{package}=={version}", "-d", tmp], check=True)
            assembly = _jsii_from_wheel(next(Path(tmp).glob("*.whl")))
        assert f"/{tf_version}/docs" in assembly["readme"]["markdown"], "unexpected version"
        target.write_text(json.dumps(compact(assembly), sort_keys=True))


if __name__ == "__main__":
    build(Path(sys.argv[1]))
