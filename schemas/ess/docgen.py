"""Render the data-spec document from a map (the original 2021 design's "common data spec")."""

from __future__ import annotations

from .db.schema import KEYS, sql_type
from .plan import read_plan
from .regmap import RegisterMap

_KEY_TEXT = {
    "ts": "poll start time (UTC instant; shown in the site's zone in daily CSV files)",
    "site_id": "site id from sites.yaml",
    "bank_id": "bank id from the device's configuration",
    "rack_id": "rack number, 1..8",
}


def _num(v) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else str(v)


def render_data_spec(m: RegisterMap) -> str:
    """Markdown: blocks, read plan, then one table per data type with every column."""
    out = [f"# Data specification (map `{m.map_id}` version {m.version})", "",
           "Generated from `schemas/maps/" + m.map_id + ".yaml` by `ess map doc`; do not edit. "
           "A test fails when this file is stale.", "",
           "Preprocessing per register: sign (`int16` is two's complement), scale and round to "
           "3 decimals, range check (out-of-range values are kept and listed in the row's "
           "`out_of_range` column), inversion (0 and 1 swapped), unused registers dropped.", "",
           "## Blocks and reads (Modbus function code 4, input registers)", "",
           "| block | addresses | registers | scaled | reads (address+count) |",
           "|---|---|---|---|---|"]
    plan = read_plan(m)
    for b in m.blocks:
        reads = ", ".join(f"{r.address}+{r.count}" for r in plan if r.block == b.name)
        out.append(f"| {b.name} | {b.start}..{b.end - 1} | {b.count} | "
                   f"{'yes' if b.scaled else 'no (status)'} | {reads} |")
    unused = [f"{r.block} {r.address}" for b in m.blocks for r in b.registers if r.unused]
    if unused:
        out += ["", "Unused (read only when it saves a request, then dropped): "
                + ", ".join(unused) + "."]
    for table in m.tables():
        rack_note = (f" One row per rack (1..{m.racks}); the addresses below are rack 1's, rack r "
                     "adds the rack stride." if table == "rack" else "")
        key = ", ".join(k for k, _ in KEYS[table][1:])
        out += ["", f"## `{table}`", "", f"Unique key: ({key}, ts).{rack_note}", "",
                "| column | block | address | type | scale | unit | min | max | invert "
                "| SQL type |", "|---|---|---|---|---|---|---|---|---|---|"]
        for name, typ in KEYS[table]:
            out.append(f"| `{name}` | | | | | | | | | {typ} — {_KEY_TEXT[name]} |")
        for f in m.table_fields(table):
            typ = f.type + (f" bit {f.bit}" if f.bit is not None else "")
            out.append(f"| `{f.column}` | {f.block} | {f.address} | {typ} | {_num(f.scale)} | "
                       f"{f.unit} | {_num(f.min)} | {_num(f.max)} | "
                       f"{'yes' if f.invert else ''} | {sql_type(f)} |")
        out.append("| `out_of_range` | | | | | | | | | text[] — names of the columns whose value "
                   "was outside its range; NULL when none |")
    return "\n".join(out) + "\n"
