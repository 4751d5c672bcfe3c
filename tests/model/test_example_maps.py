"""The example maps shipped in schemas/maps/examples/: valid, documented, planned per function."""

import pytest
from ess import paths
from ess.docgen import render_data_spec
from ess.plan import MAX_BITS_PER_READ, MAX_REGISTERS_PER_READ, read_plan
from ess.regmap import load_map

EXAMPLES = sorted(p.stem for p in (paths.MAPS_DIR / "examples").glob("*.yaml"))


def test_examples_are_shipped():
    assert {"pcs-meter", "sunspec-802"} <= set(EXAMPLES)
    for name in EXAMPLES:
        first = (paths.MAPS_DIR / "examples" / f"{name}.yaml").read_text().splitlines()[0]
        assert first.startswith("#"), f"{name}: the first line notes the map's source"


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_renders_and_plans(name):
    m = load_map(f"examples/{name}")
    doc = render_data_spec(m)
    assert all(f"`{c}`" in doc for t in m.tables() for c in m.columns(t))
    for req in read_plan(m):
        block = m.block(req.block)
        assert req.function == block.function
        assert req.count <= (MAX_BITS_PER_READ if block.is_bits else MAX_REGISTERS_PER_READ)
        assert block.start <= req.address and req.address + req.count <= block.end


def test_pcs_meter_uses_what_the_issue_names():
    m = load_map("examples/pcs-meter")
    types = {(f.type, f.byte_order) for f in m.fields()}
    assert ("float32", "CDAB") in types and ("uint64", "ABCD") in types
    assert {b.function for b in m.blocks} == {"holding", "input", "coil", "discrete"}


def test_sunspec_scale_factors_are_read():
    m = load_map("examples/sunspec-802")
    sfs = {f.scale_factor for f in m.fields() if f.scale_factor is not None}
    assert len(sfs) == 12
    covered = {a for r in read_plan(m) for a in range(r.address, r.address + r.count)}
    assert sfs <= covered
    assert dict(m.sentinels)["int16"] == 0x8000
