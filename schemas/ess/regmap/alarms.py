"""Alarm declarations of a map (`alarms:`): checks a schema cannot express, and the model.

Each alarm names a column (and its table when several tables have it). A bit alarm reads a bit
column, an unscaled integer column (active while not 0: the default map's status registers) or
one bit of an unscaled 16- or 32-bit integer column (`bit`, e.g. a SunSpec bitfield). A
threshold alarm (`above` or `below`, optional `hysteresis`) reads any numeric column. `for`
delays the raise until the condition has held that long.
"""

from __future__ import annotations

import re

from .model import TYPE_WIDTH, Alarm

MAX_FOR_S = 3600.0          # the longest `for`: bounds how far back a pending raise is looked for
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_s(value: float | str) -> float:
    """Seconds of a `for` value: a number of seconds, or `500ms`, `10s`, `2m`, `1h`."""
    if isinstance(value, int | float):
        return float(value)
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)", value)
    if m is None:
        raise ValueError(f"not a duration: {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _columns(doc: dict) -> dict[tuple[str, str], dict]:
    """(table, column) -> what an alarm needs to know of it: type, scaled, bit."""
    out: dict[tuple[str, str], dict] = {}
    for b in doc["blocks"]:
        for r in b["registers"]:
            if r.get("unused"):
                continue
            if r["type"] == "bits":
                for x in r["bits"]:
                    out.setdefault((r["table"], x["column"]), {"type": "bit"})
                continue
            scaled = ("scale_factor" in r or r.get("scale", 1) != 1
                      or r["type"] in ("float32", "float64"))
            out.setdefault((r["table"], r["column"]), {"type": r["type"], "scaled": scaled})
    return out


def _where(a: dict, i: int) -> str:
    return f"alarm {a.get('name', '#' + str(i))}"


def _kind_problems(a: dict, col: dict, where: str) -> list[str]:
    """Problems of an alarm against its column's type."""
    name, typ = a["column"], col["type"]
    if "above" in a and "below" in a:
        return [f"{where}, field below: an alarm has above or below, not both"]
    if "hysteresis" in a and "above" not in a and "below" not in a:
        return [f"{where}, field hysteresis: only a threshold (above or below) has one"]
    if "above" in a or "below" in a:
        if "bit" in a:
            return [f"{where}, field bit: a threshold alarm reads the value, not a bit"]
        if typ == "bit":
            key = "above" if "above" in a else "below"
            return [f"{where}, field {key}: column {name!r} is one bit: declare a bit alarm "
                    "(no above or below)"]
        return []
    if typ != "bit" and col.get("scaled"):
        return [f"{where}, field column: column {name!r} is a scaled {typ} value: a bit alarm "
                "reads a bit or an unscaled integer column (give above or below for a "
                "threshold)"]
    if "bit" not in a:
        return []
    if typ == "bit":
        return [f"{where}, field bit: column {name!r} is already one bit"]
    if TYPE_WIDTH[typ] > 2:
        return [f"{where}, field bit: column {name!r} is {typ}: a bit alarm reads a 16- or "
                "32-bit register"]
    if a["bit"] >= 16 * TYPE_WIDTH[typ]:
        return [f"{where}, field bit: {typ} has bits 0..{16 * TYPE_WIDTH[typ] - 1}"]
    return []


def _column_of(a: dict, columns: dict, where: str) -> tuple[str | None, list[str]]:
    """The alarm's table, or the problem naming the field."""
    tables = sorted(t for t, c in columns if c == a["column"])
    if "table" in a:
        if a["table"] not in tables:
            return None, [f"{where}, field column: table {a['table']} has no column "
                          f"{a['column']!r}"]
        return a["table"], []
    if not tables:
        return None, [f"{where}, field column: no table has a column {a['column']!r}"]
    if len(tables) > 1:
        return None, [f"{where}, field table: column {a['column']!r} is in tables "
                      f"{' and '.join(tables)}: name the table"]
    return tables[0], []


def alarm_problems(doc: dict) -> list[str]:
    """Every problem of the map's alarms; the document already passed the schema."""
    problems: list[str] = []
    columns = _columns(doc)
    seen: dict[str, int] = {}
    for i, a in enumerate(doc.get("alarms") or []):
        where = _where(a, i)
        if a["name"] in seen:
            problems.append(f"{where}, field name: duplicate alarm name (also "
                            f"alarms[{seen[a['name']]}])")
        seen.setdefault(a["name"], i)
        if "for" in a and duration_s(a["for"]) > MAX_FOR_S:
            problems.append(f"{where}, field for: at most {MAX_FOR_S:g} s")
        table, found = _column_of(a, columns, where)
        problems += found
        if table is not None:
            problems += _kind_problems(a, columns[(table, a["column"])], where)
    return problems


def _float(v) -> float | None:
    return None if v is None else float(v)


def build_alarms(doc: dict) -> tuple[Alarm, ...]:
    """The model of a checked map's alarms, in declaration order."""
    columns = _columns(doc)
    out = []
    for a in doc.get("alarms") or []:
        table = a.get("table") or next(t for t, c in columns if c == a["column"])
        out.append(Alarm(name=a["name"], severity=a["severity"], table=table,
                         column=a["column"], bit=a.get("bit"), above=_float(a.get("above")),
                         below=_float(a.get("below")), hysteresis=float(a.get("hysteresis", 0)),
                         for_s=duration_s(a.get("for", 0)), note=a.get("note", "")))
    return tuple(out)
