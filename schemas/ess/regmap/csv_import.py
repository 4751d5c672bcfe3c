"""Turn a register-map CSV (the spec's format) into a map document."""

from __future__ import annotations

import csv
from pathlib import Path


def _num(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def map_from_csv(path: str | Path, map_id: str = "default", version: int = 1,
                 status_blocks: tuple[str, ...] = ("BMS2",)) -> dict:
    """Build a map document from CSV rows; blocks span their lowest to highest address.

    `status_blocks` are unscaled (their scale column must be 1 and is dropped).
    """
    blocks: dict[str, dict] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            name = row["block"]
            b = blocks.setdefault(name, {"name": name, "registers": []})
            reg: dict = {"address": int(row["address"])}
            if not row["column"]:
                reg["unused"] = True
            else:
                reg["table"] = row["table"]
                reg["column"] = row["column"]
                if row.get("seed_name"):
                    reg["seed_name"] = row["seed_name"]
                reg["type"] = row["type"]
                if name not in status_blocks:
                    reg["scale"] = _num(row["scale"])
                elif row["scale"] not in ("", "1"):
                    raise ValueError(f"{path}: block {name}, register {row['address']}, "
                                     f"field scale: status block with scale {row['scale']}")
                if row.get("unit"):
                    reg["unit"] = row["unit"]
                if row.get("min") != "" and row.get("max") != "":
                    reg["min"], reg["max"] = _num(row["min"]), _num(row["max"])
                if row.get("invert") == "1":
                    reg["invert"] = True
                if row.get("rack"):
                    reg["rack"] = int(row["rack"])
            if row.get("note"):
                reg["note"] = row["note"]
            b["registers"].append(reg)
    doc_blocks = []
    for name, b in blocks.items():
        addrs = [r["address"] for r in b["registers"]]
        doc_blocks.append({"name": name, "start": min(addrs), "count": max(addrs) - min(addrs) + 1,
                           "scaled": name not in status_blocks, "registers": b["registers"]})
    return {"map_id": map_id, "version": version, "blocks": doc_blocks}


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
