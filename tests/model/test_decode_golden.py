"""Golden decode tables: every type in every byte order, extremes, NaN/inf, sentinels, scale
factors (tests/golden/decode/vectors.yaml), and bit blocks packed into frame words."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from ess.db.schema import sql_type
from ess.decode import Decoder
from ess.regmap import load_map_file, parse_map

VECTORS = yaml.safe_load((Path(__file__).parents[1] / "golden" / "decode" / "vectors.yaml")
                         .read_text())
EXTENDED = Path(__file__).parents[1] / "golden" / "maps" / "extended.yaml"


def _map_for(case: dict):
    reg = {"address": 0, "table": "pcs", "column": "v", "type": case["type"]}
    for key in ("byte_order", "bit"):
        if key in case:
            reg[key] = case[key]
    words = [int(w, 16) for w in case["words"]]
    regs = [reg]
    if "scale_factor" in case:
        reg["scale_factor"] = len(words)
        regs.append({"address": len(words), "table": "pcs", "column": "sf", "type": "int16"})
        words += [int(w, 16) for w in case["scale_factor"]]
    doc = {"map_id": "golden", "version": 1, "blocks": [
        {"name": "DEV", "function": "holding", "start": 0, "count": len(words), "scaled": True,
         "registers": regs}]}
    if "sentinels" in case:
        doc["sentinels"] = case["sentinels"]
    return parse_map(doc), words


def _id(c: dict) -> str:
    return "-".join([c["type"], c.get("byte_order", ""), "".join(w[2:] for w in c["words"])])


@pytest.mark.parametrize("case", VECTORS, ids=_id)
def test_golden_vector(case):
    regmap, words = _map_for(case)
    (row,) = Decoder(regmap).decode({"DEV": words})
    got, want = row["v"], case["value"]
    if want is None:
        assert got is None
    elif want in ("inf", "-inf"):
        assert got == float(want)
    elif case["type"] == "float32":
        assert np.float32(got) == np.float32(want)
    else:
        assert got == want and type(got) is type(want), (got, want)


def test_golden_tables_cover_every_type_in_every_order():
    seen = {(c["type"], c.get("byte_order")) for c in VECTORS}
    for typ in ("int32", "uint32", "int64", "uint64", "float32", "float64"):
        for order in ("ABCD", "CDAB", "BADC", "DCBA"):
            assert (typ, order) in seen
    assert {("int16", None), ("uint16", None), ("bit", None)} <= seen
    assert any(c["value"] is None and "sentinels" in c for c in VECTORS)
    assert any("scale_factor" in c for c in VECTORS)
    assert any(isinstance(c["value"], float) and math.isfinite(c["value"]) for c in VECTORS)


def test_word_order_little_is_cdab():
    """The alias keeps the stored values of existing maps: little = CDAB (words swapped)."""
    m = load_map_file(EXTENDED)
    f = m.block("DEV").registers[1].fields[0]
    assert f.byte_order == "CDAB"
    words = [0, 0, 0x0000, 0x3FC0, 0, 0, 0]      # 1.5 = 0x3FC00000, low word first
    (row,) = Decoder(m).decode({"DEV": words})
    assert row["power"] == 1.5


def test_coils_travel_packed_lsb_first():
    doc = {"map_id": "bits", "version": 1, "blocks": [
        {"name": "CO", "function": "coil", "start": 100, "count": 20, "scaled": False,
         "registers": [{"address": 100 + k, "table": "etc", "column": f"c{k}", "type": "bit"}
                       for k in (0, 1, 15, 16, 19)]}]}
    m = parse_map(doc)
    assert m.block("CO").words == 2
    d = Decoder(m)
    (row,) = d.decode({"CO": [0b1000_0000_0000_0010, 0b1001]})
    assert (row["c0"], row["c1"], row["c15"], row["c16"], row["c19"]) == (0, 1, 1, 1, 1)
    assert {sql_type(f) for f in m.fields()} == {"smallint"}


def test_exact_64_bit_integers_in_a_batch():
    doc = {"map_id": "wide", "version": 1, "blocks": [
        {"name": "DEV", "start": 0, "count": 8, "scaled": True, "registers": [
            {"address": 0, "table": "pcs", "column": "u", "type": "uint64", "byte_order": "CDAB"},
            {"address": 4, "table": "pcs", "column": "i", "type": "int64"}]}]}
    m = parse_map(doc)
    assert [sql_type(f) for f in m.fields()] == ["numeric(20)", "bigint"]
    raw = np.array([[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0x7FFF, 0xFFFF, 0xFFFF, 0xFFFF],
                    [1, 0, 0, 0, 0x8000, 0, 0, 1]], dtype=np.uint16)
    (tb,) = Decoder(m).decode_batch(raw)
    assert tb.row_lists() == [[2**64 - 1, 2**63 - 1], [1, -2**63 + 1]]
    assert tb.column_lists() == [[2**64 - 1, 1], [2**63 - 1, -2**63 + 1]]
