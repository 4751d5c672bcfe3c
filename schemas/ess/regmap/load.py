"""Load a register map file: JSON Schema first, then the checks a schema cannot express."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

from .. import paths
from ..errors import PermanentError
from .alarms import alarm_problems, build_alarms
from .checks import sentinel_table, type_problems
from .model import TYPE_WIDTH, WORD_ORDER_ALIAS, Block, Field, Register, RegisterMap


class MapError(PermanentError):
    """A register map is invalid; `problems` holds one message per problem."""

    reason = "bad_map"

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(
            f"  - {p}" for p in problems))


def _end_of_text(validator, pattern: str, instance, schema):
    """`pattern` as ECMA-262 reads it: a final `$` is the end of the text, so a map id or a
    column may not end with a newline (Python's `$` also matches before one)."""
    if not validator.is_type(instance, "string"):
        return
    if re.search(re.sub(r"(?<!\\)\$$", r"\\Z", pattern), instance) is None:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML parse error in one line: what, and where (`line 3, column 7`)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"not valid YAML: {getattr(exc, 'problem', None) or exc}{where}"


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(paths.MAP_SCHEMA.read_text())
    strict = jsonschema.validators.extend(jsonschema.Draft202012Validator,
                                          {"pattern": _end_of_text})
    return strict(schema)


def _place(doc: dict, path: list) -> str:
    """Name the block, register and field a JSON path points at."""
    parts = []
    try:
        if len(path) >= 2 and path[0] == "blocks":
            block = doc["blocks"][path[1]]
            parts.append(f"block {block.get('name', '#' + str(path[1]))}")
            if len(path) >= 4 and path[2] == "registers":
                reg = block["registers"][path[3]]
                parts.append(f"register {reg.get('address', '#' + str(path[3]))}")
                rest = path[4:]
            else:
                rest = path[2:]
        elif len(path) >= 2 and path[0] == "alarms":
            alarm = doc["alarms"][path[1]]
            name = alarm.get("name") if isinstance(alarm, dict) else None
            parts.append(f"alarm {name if isinstance(name, str) else '#' + str(path[1])}")
            rest = path[2:]
        else:
            rest = path
    except (KeyError, IndexError, TypeError):
        rest = path
    if rest:
        parts.append("field " + ".".join(str(p) for p in rest))
    return ", ".join(parts) or "top level"


def _schema_problems(doc: object) -> list[str]:
    problems = []
    for err in sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.path))):
        where = _place(doc, list(err.path)) if isinstance(doc, dict) else "top level"
        if err.validator == "required":
            missing = err.message.split("'")[1] if "'" in err.message else err.message
            problems.append(f"{where}, field {missing}: missing")
        elif err.validator == "oneOf" and err.path and err.path[-1] == "for":
            problems.append(f"{where}: {err.instance!r} is not a duration (seconds, or 500ms, "
                            "10s, 2m, 1h)")
        elif err.validator == "not":
            problems.append(f"{where}: fields that do not go together ({_not_hint(err)})")
        else:
            problems.append(f"{where}: {err.message}")
    return problems


def _not_hint(err: jsonschema.ValidationError) -> str:
    inst = err.instance if isinstance(err.instance, dict) else {}
    if inst.get("unused"):
        return "an unused register has no table, column or type"
    if inst.get("type") == "bits":
        return "a bits register names columns in 'bits', and has no 'column' or 'scale'"
    return "'bits' goes only with type bits"


def _semantic_problems(doc: dict) -> list[str]:
    """Checks across registers and blocks; the document already passed the schema."""
    problems: list[str] = []
    spans = []
    for b in doc["blocks"]:
        name, start, count = b["name"], b["start"], b["count"]
        if start + count > 65536:
            problems.append(f"block {name}, field count: block runs past address 65535")
        spans.append((b.get("function", "input"), start, start + count, name))
        taken: dict[int, int] = {}
        for r in b["registers"]:
            addr = r["address"]
            where = f"block {name}, register {addr}"
            width = 1 if r.get("unused") else TYPE_WIDTH[r["type"]]
            if addr < start or addr >= start + count:
                problems.append(f"{where}, field address: outside the block "
                                f"({start}..{start + count - 1})")
            for a in range(addr, addr + width):
                if a in taken:
                    problems.append(f"{where}, field address: overlaps register {taken[a]}")
                    break
                taken[a] = addr
            if r.get("unused"):
                continue
            for key in ("scale", "scale_factor"):
                if not b["scaled"] and key in r:
                    problems.append(f"{where}, field {key}: block {name} holds status "
                                    "registers, which are not scaled")
            if r["type"] in ("bits", "bit") and ("min" in r or "max" in r):
                problems.append(f"{where}, field min: bit fields have no range")
            if ("min" in r) != ("max" in r):
                problems.append(f"{where}, field {'max' if 'min' in r else 'min'}: "
                                "a range needs both min and max")
            elif "min" in r and r["min"] > r["max"]:
                problems.append(f"{where}, field min: min {r['min']} is above max {r['max']}")
            if r["table"] == "rack" and "rack" not in r:
                problems.append(f"{where}, field rack: missing (rack table registers name "
                                "their rack)")
            if r["table"] != "rack" and "rack" in r:
                problems.append(f"{where}, field rack: only rack table registers name a rack")
    spans.sort()
    for (f1, s1, e1, n1), (f2, s2, _e2, n2) in zip(spans, spans[1:]):
        if f1 == f2 and s2 < e1:
            problems.append(f"block {n2}, field start: overlaps block {n1} "
                            f"({s1}..{e1 - 1})")
    names = [b["name"] for b in doc["blocks"]]
    for n in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"block {n}, field name: duplicate block name")
    problems += _column_problems(doc)
    return problems + type_problems(doc) + alarm_problems(doc)


def _column_problems(doc: dict) -> list[str]:
    problems = []
    seen: dict[tuple, str] = {}
    per_rack: dict[int, list[str]] = defaultdict(list)
    for b in doc["blocks"]:
        for r in b["registers"]:
            if r.get("unused"):
                continue
            cols = [x["column"] for x in r["bits"]] if r["type"] == "bits" else [r["column"]]
            for c in cols:
                key = (r["table"], r.get("rack"), c)
                where = f"block {b['name']}, register {r['address']}"
                if key in seen:
                    problems.append(f"{where}, field column: duplicate column {c!r} in table "
                                    f"{r['table']} (also {seen[key]})")
                else:
                    seen[key] = where
                if r["table"] == "rack" and "rack" in r:
                    per_rack[r["rack"]].append(c)
    if per_rack:
        racks = sorted(per_rack)
        if racks != list(range(1, len(racks) + 1)):
            problems.append(f"table rack, field rack: racks must be numbered 1..n, got {racks}")
        first = per_rack[racks[0]]
        for k in racks[1:]:
            if per_rack[k] != first:
                problems.append(f"table rack, field column: rack {k} does not have the same "
                                f"columns in the same order as rack {racks[0]}")
    return problems


def _order(r: dict) -> str:
    return r.get("byte_order") or WORD_ORDER_ALIAS[r.get("word_order", "big")]


def _build(doc: dict, source: str) -> RegisterMap:
    blocks = []
    racks = set()
    sentinels = sentinel_table(doc)
    for b in doc["blocks"]:
        regs = []
        for r in sorted(b["registers"], key=lambda r: r["address"]):
            if r.get("unused"):
                regs.append(Register(b["name"], r["address"], "uint16", (), unused=True))
                continue
            common = dict(
                table=r["table"], rack=r.get("rack"), block=b["name"], address=r["address"],
                type=r["type"], unit=r.get("unit", ""), seed_name=r.get("seed_name", ""),
                byte_order=_order(r),
            )
            if r.get("rack"):
                racks.add(r["rack"])
            if r["type"] == "bits":
                fields = tuple(Field(column=x["column"], bit=x["bit"],
                                     invert=x.get("invert", False), **common)
                               for x in sorted(r["bits"], key=lambda x: x["bit"]))
            elif r["type"] == "bit":
                fields = (Field(column=r["column"], bit=r.get("bit"),
                                invert=r.get("invert", False), **common),)
            else:
                fields = (Field(column=r["column"], scale=float(r.get("scale", 1)),
                                min=r.get("min"), max=r.get("max"),
                                invert=r.get("invert", False),
                                scale_factor=r.get("scale_factor"),
                                sentinel=sentinels.get(r["type"]), **common),)
            regs.append(Register(b["name"], r["address"], r["type"], fields))
        blocks.append(Block(b["name"], b["start"], b["count"], b["scaled"], tuple(regs),
                            b.get("function", "input")))
    return RegisterMap(doc["map_id"], doc["version"], tuple(blocks), source=source,
                       racks=len(racks), description=doc.get("description", ""),
                       sentinels=tuple(sorted(sentinels.items())), alarms=build_alarms(doc))


def parse_map(doc: object, source: str = "<memory>") -> RegisterMap:
    """Validate a parsed map document and build the model; raise MapError listing every problem."""
    problems = _schema_problems(doc)
    if not problems:
        problems = _semantic_problems(doc)  # type: ignore[arg-type]
    if problems:
        raise MapError(source, problems)
    return _build(doc, source)  # type: ignore[arg-type]


def load_map_file(path: str | Path) -> RegisterMap:
    """Load and validate a YAML or JSON map file."""
    path = Path(path)
    try:
        # libyaml's loader when built with it: the same documents, ~5x faster
        doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise MapError(str(path), [f"cannot read: {exc.strerror or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise MapError(str(path), [yaml_problem(exc)]) from exc
    return parse_map(doc, str(path))


@lru_cache(maxsize=32)
def load_map(ref: str = "default") -> RegisterMap:
    """Load a map by name (a file in schemas/maps/, e.g. `default` or `examples/pcs-meter`) or
    by path; cached."""
    candidate = paths.MAPS_DIR / f"{ref}.yaml"
    named = not ref.endswith((".yaml", ".yml", ".json")) and ".." not in ref
    if named and not candidate.exists() and not Path(ref).exists():
        ids = sorted(p.relative_to(paths.MAPS_DIR).with_suffix("").as_posix()
                     for p in paths.MAPS_DIR.rglob("*.yaml"))
        raise MapError(ref, [f"no such map: not a map id ({', '.join(ids)}) nor a file"])
    return load_map_file(candidate if named and candidate.exists() else ref)
