"""Render the data-spec document from a map (the original 2021 design's "common data spec")."""

from __future__ import annotations

from pathlib import Path

from . import paths
from .db.rollup_schema import rollup_specs
from .db.schema import KEYS, sql_type
from .plan import read_plan
from .regmap import RegisterMap
from .regmap.model import FUNCTIONS

_KEY_TEXT = {
    "ts": "poll start time (UTC instant; shown in the site's zone in daily CSV files)",
    "site_id": "site id from sites.yaml",
    "bank_id": "bank id from the device's configuration",
    "rack_id": "rack number, 1..8",
}


_TYPE_NOTES = (
    "Types: `int16`/`uint16` one register; `int32`, `uint32`, `float32` two; `int64`, `uint64`, "
    "`float64` four, in the byte order shown (ABCD big-endian, CDAB word-swapped, BADC "
    "byte-swapped, DCBA little-endian; for 64-bit types ABCDEFGH, GHEFCDAB, BADCFEHG, HGFEDCBA). "
    "`bits`/`bit` are one bit of a register, or a coil or discrete input. A scale `10^[a]` is "
    "SunSpec's: the value is raw x 10^sf, sf the int16 register at address a (NULL when sf is "
    "outside -10..10, e.g. 0x8000). A float NaN is stored as NULL; an infinity (a float "
    "register's, or a scaled value beyond the double range) is stored as one, and is out of "
    "range when the column has a range; a zero keeps its sign (-0.0 stays -0).",
    "",
    "Rounding, exactly. A raw value is taken as a double: exact for every 16- and 32-bit raw "
    "and for 64-bit raws up to 2^53, beyond that the nearest double, ties to even. A fixed "
    "`scale`: x = raw x scale (one IEEE 754 double multiplication), stored as rint(1000 x) / "
    "1000: 1000 x is computed in double and rounded to the nearest integer, ties to even (a "
    "zero keeping the sign of x), so the tie is decided on that double (raw 25 x 0.0001 gives "
    "0.002, "
    "raw 135 x 0.0001 gives 0.014, raw 45 x 0.0001 gives 0.005 because 1000 x is "
    "4.500000000000001); where 1000 x is 2^52 or more in magnitude (|x| from about 4.5e12) it "
    "is an integer already, rint has nothing to round, and x is stored as it is: dividing by "
    "1000 again would only add a rounding error (int64 raw 548307629320713276 x 0.001 is "
    "548307629320713.25, the double nearest the exact value, not .375; the largest double x "
    "0.5 stays finite). A scale factor `10^[a]`: no rounding to decimals (raw x 10^sf "
    "has at most -sf of them); the raw value, as a double, is "
    "divided by 10^-sf (sf < 0) or multiplied by 10^sf (sf >= 0), one correctly rounded "
    "operation on exact operands: the stored value is the double nearest raw x 10^sf, ties to "
    "even (raw 3 with sf -1 is 0.3, not 0.30000000000000004; raw 12345 with sf -4 is 1.2345; "
    "int64 raw 4000000000000002 with sf 1, exactly halfway between two doubles, is "
    "40000000000000016). A `real` column then holds the nearest float4 (ties to even), which "
    "keeps every digit of a 16-bit raw.",
    "",
    "SQL types hold every value exactly: unscaled integers in `smallint`, `integer`, `bigint` "
    "(`int64`, `uint32`) or `numeric(20)` (`uint64`, above bigint's 2^63 - 1); `real` only for "
    "scaled 16-bit registers (at most 5 significant digits, within real's 6); `double "
    "precision` for `float32`, `float64` and scaled 32/64-bit integers (exact to 2^53).",
)


def _real_text(m: RegisterMap) -> str:
    real = [f for f in m.fields() if sql_type(f) == "real"]
    if not real:
        return "This map has no `real` column."
    kinds = sorted({f.type for f in real})
    return (f"In this map `real` covers {len(real)} columns: the scaled "
            f"{' and '.join(kinds)} registers, every one within 65535 x its scale.")


def _sentinel_text(m: RegisterMap) -> str:
    if not m.sentinels:
        return "Sentinels: none (every raw value is a number)."
    return ("Sentinels (\"not implemented\", stored as NULL): "
            + ", ".join(f"{t} {v:#x}" for t, v in m.sentinels) + ".")


def _source_text(m: RegisterMap) -> str:
    """The map's file: `schemas/maps/...` for the project's maps, else its file name."""
    try:
        rel = Path(m.source).resolve().relative_to(paths.MAPS_DIR.resolve())
    except ValueError:
        return Path(m.source).name
    return f"schemas/maps/{rel.as_posix()}"


def _num(v) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else str(v)


def render_data_spec(m: RegisterMap) -> str:
    """Markdown: blocks, read plan, then one table per data type with every column."""
    out = [f"# Data specification (map `{m.map_id}` version {m.version})", "",
           f"Generated from `{_source_text(m)}` by `ess map doc`; do not edit. "
           "A test fails when this file is stale.", "",
           "Preprocessing per register: sign (`int16` is two's complement), scale (a fixed "
           "scale rounds to 3 decimals; a scale factor register does not: see Rounding), range "
           "check (out-of-range values are kept and listed in the row's `out_of_range` column), "
           "inversion (0 and 1 swapped), unused registers dropped.", "",
           *_TYPE_NOTES, _real_text(m), "", _sentinel_text(m), "",
           "## Blocks and reads", "",
           "| block | function | addresses | registers | scaled | reads (address+count) |",
           "|---|---|---|---|---|---|"]
    plan = read_plan(m)
    for b in m.blocks:
        reads = ", ".join(f"{r.address}+{r.count}" for r in plan if r.block == b.name)
        size = f"{b.count} bits" if b.is_bits else str(b.count)
        out.append(f"| {b.name} | {b.function} ({FUNCTIONS[b.function]}) | "
                   f"{b.start}..{b.end - 1} | {size} | "
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
            typ = f.type + (f" bit {f.bit}" if f.bit is not None else "") + (
                f" {f.byte_order}" if f.width > 1 else "")
            scale = (f"10^[{f.scale_factor}]" if f.scale_factor is not None else _num(f.scale))
            out.append(f"| `{f.column}` | {f.block} | {f.address} | {typ} | {scale} | "
                       f"{f.unit} | {_num(f.min)} | {_num(f.max)} | "
                       f"{'yes' if f.invert else ''} | {sql_type(f)} |")
        out.append("| `out_of_range` | | | | | | | | | text[] — names of the columns whose value "
                   "was outside its range; NULL when none |")
    return "\n".join(out + _alarms_text(m) + _rollups(m)) + "\n"


def _alarms_text(m: RegisterMap) -> list[str]:
    """The alarms section: one row per declared alarm (docs/events.md derives the episodes)."""
    if not m.alarms:
        return ["", "## Alarms", "", "This map declares no alarms."]
    out = ["", "## Alarms", "",
           "Episodes of these alarms go to the `events` table (docs/events.md): one row per "
           "site, bank, rack (rack table alarms) and episode. A bit alarm is active while the "
           "stored value (after inversion) is not 0, or while its bit is set; a NULL value "
           "changes nothing.", "",
           "| alarm | severity | table | column | raised when | note |",
           "|---|---|---|---|---|---|"]
    for a in m.alarms:
        out.append(f"| `{a.name}` | {a.severity} | {a.table} | `{a.column}` | {a.condition()} | "
                   f"{a.note} |")
    return out


_ROLLUP_TEXT = (
    "## Rollups",
    "",
    "Every data table `T` has two rollup tables, `T_1m` and `T_1h`: one row per site, bank "
    "(rack) and UTC minute or hour (`bucket`, its start), unique key (site_id, bank_id, "
    "[rack_id,] bucket). `ess db migrate` creates them with the tables, in both modes (plain "
    "tables; no continuous aggregates). `samples` counts the bucket's raw rows and "
    "`out_of_range_rows` those with a flagged value. A numeric column `c` gives `c_min`, "
    "`c_max` (its SQL type), `c_mean` (the mean of the non-NULL values, summed in double "
    "precision; `real` for a `real` column, whose values have at most 5 significant "
    "digits, so a mean of 57.8s is 57.8 as min and max show it; else double precision), "
    "`c_last` (the value in the bucket's "
    "latest row; NULL when that poll's block failed, as TimescaleDB's `last(value, time)`) "
    "and `c_count` (non-NULL values). A bit or status column (a `bits`/`bit` register, a "
    "register of a `scaled: false` block, or an unscaled integer with no unit and no range) "
    "gives `c_any` (the OR of every value: a bit set at any time in the bucket) and `c_last`. "
    "An hour is computed from its minutes (min of mins, count-weighted mean, ...).",
    "",
    "The rollup job (`ess db rollup`; scheduled, docs/scaling.md) recomputes every minute "
    "that holds a frame committed since its last run, from all the raw rows of that minute, "
    "then those minutes' hours, and upserts them whole: a late, redelivered or replayed "
    "frame gives the same rows as frames delivered once, in order.",
)


def _rollups(m: RegisterMap) -> list[str]:
    """The rollup section: the rules, then each table's numeric and status columns."""
    out = ["", *_ROLLUP_TEXT]
    specs = rollup_specs([m])
    for table in m.tables():
        spec = specs[f"{table}_1m"]
        numeric = [f"`{x.column}`" for x in spec.measures if not x.status]
        status = [f"`{x.column}`" for x in spec.measures if x.status]
        out += ["", f"`{spec.source}_1m`, `{spec.source}_1h` ({len(spec.table.values)} value "
                    "columns):", "",
                f"- numeric (`_min`, `_max`, `_mean`, `_last`, `_count`): "
                f"{', '.join(numeric) or 'none'}",
                f"- bit and status (`_any`, `_last`): {', '.join(status) or 'none'}"]
    return out
