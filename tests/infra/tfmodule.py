"""Shared parsing helpers of the infra tests: the merged root module, references, object
variables, the IAM table of docs/deploy.md."""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from pathlib import Path

import hcl2

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
EXAMPLE = INFRA / "examples" / "dev"
CHECKOV = Path(os.environ.get("ESS_CHECKOV", ROOT / ".venv-checkov" / "bin" / "checkov"))

TF_FILES = sorted(p for p in INFRA.rglob("*.tf")
                  if "/local/" not in p.as_posix() and ".terraform" not in p.parts)
ROOT_TF = sorted(INFRA.glob("*.tf"))

def _iam_table() -> dict[str, set[str]]:
    """Expected roles per identity, "<role> on <target>", from the table in docs/deploy.md."""
    doc = (ROOT / "docs" / "deploy.md").read_text()
    section = doc.split("## IAM by intent", 1)[1].split("\n## ", 1)[0]
    out: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1].startswith("roles/"):
            assert cells[3] and cells[4].startswith("https://cloud.google.com/"), line
            out.setdefault(cells[0], set()).add(f"{cells[1]} on {cells[2]}")
    assert out, "docs/deploy.md has no IAM table"
    return out


REF = re.compile(r"\b(data\.)?((?:google|random|time)_[a-z0-9_]+)\.([a-z0-9_-]+)")
TARGET_REF = re.compile(r'\b(?:data\.)?(?:google|random)_[a-z0-9_]+\.[a-z0-9_-]+(?:\["[^"]+"\])?')


# --- parsing helpers -------------------------------------------------------------------------

def _unquote(v):
    if isinstance(v, str) and len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1]
    return v


def _norm(v):
    """python-hcl2 >= 7 keeps quotes and adds __is_block__/__comments__; normalise both shapes."""
    if isinstance(v, dict):
        return {_unquote(k): _norm(x) for k, x in v.items() if not str(k).startswith("__")}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return _unquote(v)


def parse(path: Path) -> dict:
    """The file's blocks, normalised; a fresh copy of one parse per file content (python-hcl2
    takes ~0.1 s a file, and the infra tests read the same files again and again)."""
    return copy.deepcopy(_parsed(Path(path), Path(path).read_text()))


@functools.cache
def _parsed(path: Path, text: str) -> dict:
    return _norm(hcl2.loads(text))


def load_root() -> dict:
    """Merged view of the root module: resources, data, variables, locals, outputs."""
    out = {"resource": {}, "data": {}, "variable": {}, "locals": {}, "output": {}, "module": {}}
    for p in ROOT_TF:
        d = parse(p)
        for block in d.get("resource", []):
            for rtype, named in block.items():
                out["resource"].setdefault(rtype, {}).update(named)
        for block in d.get("data", []):
            for rtype, named in block.items():
                out["data"].setdefault(rtype, {}).update(named)
        for block in d.get("variable", []):
            out["variable"].update(block)
        for block in d.get("locals", []):
            out["locals"].update(block)
        for block in d.get("output", []):
            out["output"].update(block)
    return out


def block(body: dict, name: str) -> dict:
    v = body.get(name)
    assert v, f"missing block {name}"
    return v[0] if isinstance(v, list) else v


def text(v) -> str:
    """Searchable text of a parsed value (quotes unescaped, so `x["key"]` reads as written)."""
    return json.dumps(v).replace('\\"', '"') if not isinstance(v, str) else v


def refs(v) -> set[tuple[str, str]]:
    return {(("data." if m.group(1) else "") + m.group(2), m.group(3))
            for m in REF.finditer(text(v))}


def defined(root: dict) -> set[tuple[str, str]]:
    names = {(t, n) for t, named in root["resource"].items() for n in named}
    names |= {("data." + t, n) for t, named in root["data"].items() for n in named}
    return names


def object_attrs(root: dict, name: str) -> dict[str, str]:
    """Attributes of an object-typed variable: name -> its type expression (optional(...) etc)."""
    typ = root["variable"][name]["type"]
    assert typ.startswith("${object({"), f"{name} is not an object variable"
    attrs, depth, key, start = {}, 0, None, 0
    body = typ[len("${object({"):-len("})}")] + ","
    for i, ch in enumerate(body):
        depth += (ch in "({[") - (ch in ")}]")
        if depth == 0 and ch == "=" and key is None:
            key, start = body[start:i].strip(), i + 1
        elif depth == 0 and ch == "," and key is not None:
            attrs[key], key, start = body[start:i].strip(), None, i + 1
    return attrs


def optional_default(root: dict, name: str, attr: str) -> str | None:
    """Default of `attr` in the object variable `name`, as written (None: no default)."""
    m = re.fullmatch(r"optional\((.+?)(?:, (.+))?\)", object_attrs(root, name)[attr])
    assert m, f"{name}.{attr} is not optional()"
    return m.group(2)


def sa_keys(expr: str, root: dict) -> list[str]:
    """Service-account keys a member expression refers to by literal index."""
    m = re.search(r'google_service_account\.component\["([^"]+)"\]', expr)
    if m:
        return [m.group(1)]
    raise AssertionError(f"unresolvable member {expr}")


