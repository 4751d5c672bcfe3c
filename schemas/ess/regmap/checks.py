"""Map checks on types, orders, functions, scale factors and sentinels (after the schema)."""

from __future__ import annotations

from .model import BIT_FUNCTIONS, SUNSPEC_SENTINELS, TYPE_WIDTH

SCALE_FACTOR_RANGE = 10      # SunSpec: a scale factor is -10..10; other values give NULL


def sentinel_table(doc: dict) -> dict[str, int]:
    """The map's sentinels as {type: raw pattern} (the `sunspec` preset expanded)."""
    s = doc.get("sentinels") or {}
    return dict(SUNSPEC_SENTINELS) if s == "sunspec" else dict(s)


def register_at(doc: dict, function: str, address: int) -> tuple[dict | None, dict | None]:
    """The register block of `function` holding `address`, and the register covering it."""
    for b in doc["blocks"]:
        if b.get("function", "input") != function or not b["start"] <= address < (
                b["start"] + b["count"]):
            continue
        for r in b["registers"]:
            width = 1 if r.get("unused") else TYPE_WIDTH[r["type"]]
            if r["address"] <= address < r["address"] + width:
                return b, r
        return b, None
    return None, None


def _register_problems(doc: dict, b: dict, r: dict, where: str) -> list[str]:
    """Problems of one used register that depend on its type, order and block function."""
    out = []
    fn, typ = b.get("function", "input"), r["type"]
    width = TYPE_WIDTH[typ]
    order = "byte_order" if "byte_order" in r else "word_order" if "word_order" in r else None
    if order and width == 1:
        out.append(f"{where}, field {order}: {typ} is one register; only 32- and 64-bit types "
                   "have a byte order")
    if fn in BIT_FUNCTIONS:
        if typ != "bit":
            out.append(f"{where}, field type: a {fn} block holds bits: type bit only, not {typ}")
        elif "bit" in r:
            out.append(f"{where}, field bit: a {fn} is one bit; it has no bit index")
    elif typ == "bit" and "bit" not in r:
        out.append(f"{where}, field bit: a bit column on a {fn} register needs a bit index "
                   "(0..15)")
    if "bit" in r and typ != "bit":
        out.append(f"{where}, field bit: only type bit has a bit index")
    if "scale_factor" in r:
        out += _scale_factor_problems(doc, fn, r, where)
    return out


def _scale_factor_problems(doc: dict, fn: str, r: dict, where: str) -> list[str]:
    sf, typ = r["scale_factor"], r["type"]
    if typ in ("bits", "bit"):
        return [f"{where}, field scale_factor: {typ} columns are not scaled"]
    if "scale" in r:
        return [f"{where}, field scale_factor: scale and scale_factor do not go together"]
    if fn in BIT_FUNCTIONS:
        return []
    block, reg = register_at(doc, fn, sf)
    if block is None:
        return [f"{where}, field scale_factor: register {sf} is outside every {fn}-register "
                "block"]
    if reg is not None and not reg.get("unused") and (reg["type"] != "int16"
                                                      or reg["address"] != sf):
        return [f"{where}, field scale_factor: register {sf} is {reg['type']} (register "
                f"{reg['address']}); a scale factor is an int16 register"]
    return []


def type_problems(doc: dict) -> list[str]:
    """Checks of every register's type against its block and the map's scale factors."""
    problems = []
    for b in doc["blocks"]:
        start, end = b["start"], b["start"] + b["count"]
        for r in b["registers"]:
            if r.get("unused"):
                continue
            where = f"block {b['name']}, register {r['address']}"
            width = TYPE_WIDTH[r["type"]]
            if width > 1 and start <= r["address"] < end < r["address"] + width:
                problems.append(f"{where}, field type: {r['type']} spans {width} registers "
                                f"({r['address']}..{r['address'] + width - 1}) and runs past "
                                f"the block ({start}..{end - 1})")
            problems += _register_problems(doc, b, r, where)
    return problems + _sentinel_problems(doc)


def _sentinel_problems(doc: dict) -> list[str]:
    s = doc.get("sentinels")
    if not isinstance(s, dict):
        return []
    out = []
    for typ, raw in s.items():
        bits = 16 * TYPE_WIDTH[typ]
        if raw >= 1 << bits:
            out.append(f"top level, field sentinels.{typ}: {raw:#x} does not fit {typ} "
                       f"({bits} bits; a sentinel is the type's raw bit pattern)")
    return out
