"""Turn a register-map CSV (the spec's format) into a map document."""

from __future__ import annotations

import csv
from pathlib import Path

from .load import MapError


def _num(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


# The spec's header; the first six are required, the others may be left out.
COLUMNS = ("block", "address", "table", "column", "type", "scale", "seed_name", "unit", "min",
           "max", "invert", "rack", "note")
REQUIRED = COLUMNS[:6]


def map_from_csv(path: str | Path, map_id: str = "default", version: int = 1,
                 status_blocks: tuple[str, ...] = ("BMS2",)) -> dict:
    """Build a map document from CSV rows; blocks span their lowest to highest address.

    `status_blocks` are unscaled (their scale column must be 1 and is dropped). A file that
    cannot be read, a header without a required column or a bad value is a MapError naming the
    file (and the line).
    """
    blocks: dict[str, dict] = {}
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
            if missing:
                raise MapError(str(path), [f"header: no column {', '.join(missing)} (the "
                                           f"header is {','.join(COLUMNS)})"])
            for line, row in enumerate(reader, 2):
                try:
                    _add_row(blocks, row, status_blocks)
                except (ValueError, TypeError) as exc:
                    raise MapError(str(path), [f"line {line}: {exc}"]) from exc
    except OSError as exc:
        raise MapError(str(path), [f"cannot read: {exc.strerror or exc}"]) from exc
    doc_blocks = []
    for name, b in blocks.items():
        addrs = [r["address"] for r in b["registers"]]
        doc_blocks.append({"name": name, "start": min(addrs), "count": max(addrs) - min(addrs) + 1,
                           "scaled": name not in status_blocks, "registers": b["registers"]})
    return {"map_id": map_id, "version": version, "blocks": doc_blocks}


def _given(row: dict, key: str) -> bool:
    return row.get(key) not in (None, "")


def _add_row(blocks: dict[str, dict], row: dict, status_blocks: tuple[str, ...]) -> None:
    """One CSV row as a register of its block."""
    name = row["block"]
    b = blocks.setdefault(name, {"name": name, "registers": []})
    reg: dict = {"address": int(row["address"])}
    if not row["column"]:
        reg["unused"] = True
    else:
        reg["table"] = row["table"]
        reg["column"] = row["column"]
        if _given(row, "seed_name"):
            reg["seed_name"] = row["seed_name"]
        reg["type"] = row["type"]
        if name not in status_blocks:
            reg["scale"] = _num(row["scale"])
        elif row["scale"] not in ("", "1"):
            raise ValueError(f"block {name}, register {row['address']}, field scale: status "
                             f"block with scale {row['scale']}")
        if _given(row, "unit"):
            reg["unit"] = row["unit"]
        if _given(row, "min") and _given(row, "max"):
            reg["min"], reg["max"] = _num(row["min"]), _num(row["max"])
        if row.get("invert") == "1":
            reg["invert"] = True
        if _given(row, "rack"):
            reg["rack"] = int(row["rack"])
    if _given(row, "note"):
        reg["note"] = row["note"]
    b["registers"].append(reg)


def dump_map_yaml(doc: dict, header: str = "") -> str:
    """Render a map document as YAML with one register per line."""
    import json

    import yaml

    out = [header.rstrip() + "\n"] if header else []
    top = {k: v for k, v in doc.items() if k != "blocks"}
    out.append(yaml.safe_dump(top, sort_keys=False, allow_unicode=True))
    out.append("blocks:\n")
    for b in doc["blocks"]:
        out.append(f"  - name: {b['name']}\n    start: {b['start']}\n    count: {b['count']}\n"
                   f"    scaled: {'true' if b['scaled'] else 'false'}\n    registers:\n")
        for r in b["registers"]:
            # JSON is valid YAML flow syntax and keeps each register on one line.
            out.append("      - " + json.dumps(r, ensure_ascii=False).replace('", "', '", "')
                       + "\n")
    return "".join(out)
