"""Scaled values are rounded exactly as docs/data-spec.md says (its examples are checked here),
and a scaled value that is finite is stored finite."""

from __future__ import annotations

import struct

import pytest
from ess.decode import Decoder
from ess.docgen import render_data_spec
from ess.regmap import load_map, parse_map

MAX = 1.7976931348623157e308


def _decode(typ: str, words: list[int], scale: float | None = None,
            sf: int | None = None) -> float:
    reg = {"address": 0, "table": "pcs", "column": "v", "type": typ}
    regs = [reg]
    if scale is not None:
        reg["scale"] = scale
    if sf is not None:
        reg["scale_factor"] = len(words)
        regs.append({"address": len(words), "table": "pcs", "column": "sf", "type": "int16"})
        words = words + [sf & 0xFFFF]
    m = parse_map({"map_id": "r", "version": 1, "blocks": [
        {"name": "D", "function": "holding", "start": 0, "count": len(words), "scaled": True,
         "registers": regs}]})
    (row,) = Decoder(m).decode({"D": words})
    return row["v"]


def _f64(v: float) -> list[int]:
    return list(struct.unpack(">4H", struct.pack(">d", v)))


def _i64(v: int) -> list[int]:
    return list(struct.unpack(">4H", struct.pack(">q", v)))


@pytest.mark.parametrize(("raw", "scale", "want"), [
    (MAX, 0.5, MAX * 0.5), (-MAX, 0.5, -MAX * 0.5), (MAX, 0.001, MAX * 0.001),
    (2.0 ** 60, 0.5, 2.0 ** 59), (2.0 ** 52 + 1, 0.5, (2.0 ** 52 + 1) * 0.5),
    (1234.56789, 0.5, 617.284), (1e300, 1e-3, 1e297)])
def test_a_finite_scaled_float64_is_stored_finite(raw, scale, want):
    assert _decode("float64", _f64(raw), scale) == want


# (type, words, scale, scale factor, stored, the data-spec's words for it)
EXAMPLES = [
    ("int16", [25], 0.0001, None, 0.002, "raw 25 x 0.0001 gives 0.002"),
    ("int16", [135], 0.0001, None, 0.014, "raw 135 x 0.0001 gives 0.014"),
    ("int16", [45], 0.0001, None, 0.005, "raw 45 x 0.0001 gives 0.005"),
    ("uint16", [3], None, -1, 0.3, "raw 3 with sf -1 is 0.3"),
    ("uint16", [12345], None, -4, 1.2345, "raw 12345 with sf -4 is 1.2345"),
    ("int64", _i64(4000000000000002), None, 1, 40000000000000016.0,
     "int64 raw 4000000000000002 with sf 1, exactly halfway between two doubles, is "
     "40000000000000016"),
]


@pytest.mark.parametrize(("typ", "words", "scale", "sf", "want", "text"), EXAMPLES)
def test_rounding_follows_the_data_spec(typ, words, scale, sf, want, text):
    got = _decode(typ, words, scale, sf)
    assert got == want and type(got) is float
    assert text in render_data_spec(load_map("default")).replace("\n", " ")


def test_scale_factor_values_keep_their_decimals():
    """No rounding to 3 decimals with a scale factor: the value is raw x 10^sf, correctly
    rounded (raw / 10^k, one IEEE division)."""
    for raw in (1, 7, 12345, 65535):
        for sf in range(-10, 11):
            want = raw / 10.0 ** -sf if sf < 0 else raw * 10.0 ** sf
            assert _decode("uint16", [raw], None, sf) == want
    assert _decode("uint16", [1], None, -4) == 0.0001          # not 0.0
