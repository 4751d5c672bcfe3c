"""The writer's row text (ess.db.rowtext) against a reference encoder written plainly here, for
any batch hypothesis makes (both of its paths: Python's repr, and the numpy digit tables a large
batch of decoder-like values takes).

The text is what the write statement parses (ess.db.statement): lines split on newlines, fields
on commas, an empty field is NULL, then each field goes through the column type's input
function. So each field must be text PostgreSQL accepts and reads back as the very value:
integers exactly (bigint, numeric(20) up to 2^64-1), floats to the same double (the sign of zero
too; NaN is a cell not read, so NULL; Infinity as PostgreSQL spells it or as it also accepts),
timestamps to the microsecond in the years 1..9999; a site id that would break a line is
refused."""

from __future__ import annotations

import math
import re
import struct
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from ess.db.rowtext import key_heads, rows_text
from ess.decode import TableBatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

US_MIN = -62135596800 * 10**6                   # 0001-01-01T00:00:00Z
US_MAX = 253402300799 * 10**6 + 999999          # 9999-12-31T23:59:59.999999Z
INT_RANGE = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}
KINDS = ("real", "double precision", "smallint", "integer", "bigint", "numeric(20)")
EXACT = ("bigint", "numeric(20)")               # 64-bit: carried as Python ints
# PostgreSQL's float input: a decimal number, or NaN / Infinity (also inf), any case
PG_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.I)
PG_INT = re.compile(r"-?\d+")
NAMES = ("v_b", "a1", "z", "m_2", "b", "aa")   # position order is not name order
# site ids: any text without a comma or a newline goes verbatim (escaping: backslash, tab, quotes)
SITES = ("site-a", "s", "ü-ß x", 'a\\b\t"q\'', "site-001")


# ---- the reference encoder --------------------------------------------------------------------

def ref_timestamptz(us: int) -> str:
    """ISO 8601 in UTC with the microseconds when there are any, as PostgreSQL reads it."""
    seconds, micro = divmod(us, 10**6)
    t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    text = (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:"
            f"{t.second:02d}")
    return text + (f".{micro:06d}" if micro else "") + "+00:00"


def ref_value(kind: str, value) -> str:
    """A cell as a field: '' for NULL (None, or NaN: a cell not read), an integer in decimal, a
    float as 17 significant digits (which read back exactly) or Infinity."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if kind not in ("real", "double precision"):
        return str(int(value))
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return format(value, ".17g")


def ref_lines(batch: dict) -> list[list[str]]:
    """Each row's fields: ts, site, bank, [rack,] out_of_range, values."""
    lines = []
    for r, f in enumerate(batch["row_frame"]):
        frame = batch["frames"][f]
        fields = [ref_timestamptz(frame.poll_start_us), frame.site_id, str(frame.bank_id)]
        if batch["racks"] is not None:
            fields.append(str(batch["racks"][r]))
        fields.append(" ".join(sorted(c for c, bad in zip(batch["columns"], batch["oor"][r])
                                      if bad)))
        fields += [ref_value(k, row) for k, row in zip(batch["kinds"], batch["cells"][r])]
        lines.append(fields)
    return lines


# ---- comparing a field as PostgreSQL reads it ---------------------------------------------------

def same_value(kind: str, got: str, want: str) -> bool:
    if want == "" or got == "":
        return got == want
    if kind in ("real", "double precision"):
        assert PG_FLOAT.fullmatch(got), f"PostgreSQL refuses {got!r} as a float"
        return struct.pack(">d", float(got)) == struct.pack(">d", float(want))
    assert PG_INT.fullmatch(got), f"PostgreSQL refuses {got!r} as {kind}"
    return int(got) == int(want)


# ---- batches -----------------------------------------------------------------------------------

def cell(kind: str, decoder_like: bool):
    """One cell's strategy: None is a cell not read."""
    if kind in ("real", "double precision"):
        if decoder_like:        # multiples of 0.001 below 65,536 (the numpy path takes them)
            value = st.integers(-65_535_999, 65_535_999).map(lambda k: k / 1000)
            return st.one_of(value, st.just(-0.0), st.none())
        return st.one_of(st.floats(allow_nan=False), st.none())
    if kind == "numeric(20)":
        return st.one_of(st.integers(0, 2**64 - 1), st.none())
    top = 65_535 if decoder_like else INT_RANGE[kind]
    return st.one_of(st.integers(-top, top - 1), st.none())


def bulk(rng: np.random.Generator, kind: str, decoder_like: bool, n: int) -> list:
    """n cells of a large batch, from a generator hypothesis seeds (drawing each cell through
    hypothesis would take seconds); a tenth not read."""
    if kind in ("real", "double precision"):
        values = (rng.integers(-65_535_999, 65_535_999, n) / 1000 if decoder_like
                  else rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n))
    elif kind == "numeric(20)":
        values = [int(v) for v in rng.integers(0, 2**64, n, dtype=np.uint64)]
    else:
        top = 65_535 if decoder_like else INT_RANGE[kind]
        values = [int(v) for v in rng.integers(-top, top, n)]
    return [None if rng.random() < 0.1 else v for v in values]


@st.composite
def batches(draw) -> dict:
    """A table's batch: few rows with every cell drawn, or >= 100 cells (the numpy path, for
    decoder-like values) from a seeded generator with a few drawn cells set among them."""
    ncols = draw(st.integers(1, 6))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=ncols, max_size=ncols))
    decoder_like = draw(st.booleans())
    small = draw(st.booleans())
    least = -(-100 // ncols)                 # >= 100 cells
    nrows = draw(st.integers(1, 6) if small else st.integers(least, least + 20))
    if small:
        cells = [[draw(cell(k, decoder_like)) for k in kinds] for _ in range(nrows)]
    else:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        columns = [bulk(rng, k, decoder_like, nrows) for k in kinds]
        cells = [list(row) for row in zip(*columns)]
        for r, c in draw(st.lists(st.tuples(st.integers(0, nrows - 1),
                                            st.integers(0, ncols - 1)), max_size=4)):
            cells[r][c] = draw(cell(kinds[c], decoder_like))
    frames = [SimpleNamespace(site_id=draw(st.sampled_from(SITES)),
                              bank_id=draw(st.integers(1, 32767)),
                              poll_start_us=draw(st.integers(US_MIN, US_MAX)))
              for _ in range(draw(st.integers(1, 3)))]
    rng = np.random.default_rng(nrows)
    return {
        "kinds": kinds, "columns": list(NAMES[:ncols]), "frames": frames, "cells": cells,
        "row_frame": [int(i) for i in rng.integers(0, len(frames), nrows)],
        "racks": [int(r) for r in rng.integers(1, 9, nrows)] if draw(st.booleans()) else None,
        "oor": (rng.random((nrows, ncols)) < 0.05).tolist(),
    }


def table_batch(b: dict) -> TableBatch:
    """The batch as the decoder hands it to the writer: float64 values (NaN: not read), the
    64-bit integer columns also as exact Python ints."""
    values = np.array([[np.nan if v is None else float(v) for v in row] for row in b["cells"]])
    exact = {j: np.array([row[j] for row in b["cells"]], dtype=object)
             for j, k in enumerate(b["kinds"]) if k in EXACT}
    return TableBatch("t", tuple(b["columns"]),
                      np.array([k not in ("real", "double precision") for k in b["kinds"]]),
                      np.array(b["row_frame"]),
                      None if b["racks"] is None else np.array(b["racks"]), values,
                      np.array(b["oor"], dtype=bool), exact or None)


# ---- the property ------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_every_field_reads_back_as_the_reference_says(b):
    text = rows_text(table_batch(b), key_heads(b["frames"]))
    got = [line.split(",") for line in text.split("\n")]
    want = ref_lines(b)
    assert len(got) == len(want)
    keys = len(want[0]) - len(b["kinds"])
    for g, w in zip(got, want):
        assert len(g) == len(w), (g, w)
        assert g[:keys] == w[:keys]
        for kind, gv, wv in zip(b["kinds"], g[keys:], w[keys:]):
            assert same_value(kind, gv, wv), (kind, gv, wv)


@pytest.mark.parametrize("values", [[-0.0] * 120, [-0.0, 1.5] * 60])
def test_negative_zero_keeps_its_sign_on_both_paths(values):
    for n in (1, len(values)):            # one cell (repr) and >= 100 cells (numpy tables)
        b = {"kinds": ["double precision"], "columns": ["v"], "racks": None,
             "frames": [SimpleNamespace(site_id="s", bank_id=1, poll_start_us=0)],
             "row_frame": [0] * n, "oor": [[False]] * n, "cells": [[v] for v in values[:n]]}
        fields = [line.split(",")[-1] for line in rows_text(table_batch(b), key_heads(
            b["frames"])).split("\n")]
        assert [math.copysign(1, float(f)) for f in fields] == [
            math.copysign(1, v) for v in values[:n]], fields


@given(st.text(min_size=0, max_size=8))
def test_a_site_id_that_would_break_a_line_is_refused(site):
    frame = SimpleNamespace(site_id=site, bank_id=1, poll_start_us=0)
    if site and "," not in site and "\n" not in site:
        assert key_heads([frame]) == [f"1970-01-01T00:00:00+00:00,{site},1,"]
    else:
        with pytest.raises(ValueError, match="cannot be written"):
            key_heads([frame])
