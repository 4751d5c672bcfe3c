"""Register maps: the default map encodes the spec CSV exactly; bad maps name their faults."""

import csv
from pathlib import Path

import pytest
from ess import paths
from ess.regmap import MapError, load_map, load_map_file

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SPEC_CSV = GOLDEN / "spec" / "default-register-map.csv"    # the spec-format golden file
BAD = sorted((Path(__file__).parents[1] / "golden" / "bad_maps").iterdir())
EXTENDED = Path(__file__).parents[1] / "golden" / "maps" / "extended.yaml"


def spec_rows():
    assert SPEC_CSV.exists(), f"the normative spec CSV is missing: {SPEC_CSV}"
    with open(SPEC_CSV, newline="") as fh:
        return list(csv.DictReader(fh))


def test_default_map_encodes_every_csv_row():
    m = load_map("default")
    regs = {(r.block, r.address): r for b in m.blocks for r in b.registers}
    rows = spec_rows()
    assert len(regs) == len(rows) == 497
    for row in rows:
        reg = regs[(row["block"], int(row["address"]))]
        if not row["column"]:
            assert reg.unused, row
            continue
        (f,) = reg.fields
        assert (f.table, f.column, f.type, f.unit) == (row["table"], row["column"], row["type"],
                                                       row["unit"]), row
        assert f.scale == float(row["scale"]), row
        assert f.min == (float(row["min"]) if row["min"] else None), row
        assert f.max == (float(row["max"]) if row["max"] else None), row
        assert f.invert == (row["invert"] == "1"), row
        assert f.rack == (int(row["rack"]) if row["rack"] else None), row


def test_default_map_blocks_and_tables():
    m = load_map("default")
    assert [(b.name, b.start, b.count, b.scaled) for b in m.blocks] == [
        ("BMS1", 0, 137, True), ("BMS2", 200, 266, False), ("PCS", 500, 89, True),
        ("ETC", 600, 5, True)]
    assert {t: len(m.columns(t)) for t in m.tables()} == {"bank": 43, "rack": 45, "pcs": 89,
                                                          "etc": 4}
    assert m.racks == 8
    assert "pcs_status_2" in m.columns("pcs") and "pcs_status_12" not in m.columns("pcs")
    assert "inv1_cumulative_power_generation" in m.columns("etc")


@pytest.mark.parametrize("path", sorted(paths.MAPS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_map_is_valid(path):
    load_map_file(path)


@pytest.mark.parametrize("case", BAD, ids=lambda p: p.name)
def test_bad_map_is_rejected_naming_its_place(case):
    with pytest.raises(MapError) as err:
        load_map_file(case / "map.yaml")
    text = str(err.value)
    assert text.startswith(str(case / "map.yaml"))
    for expected in (case / "expected.txt").read_text().splitlines():
        assert expected in text, f"{expected!r} not in:\n{text}"
    assert len(err.value.problems) == len((case / "expected.txt").read_text().splitlines())


def test_unreadable_map_names_the_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("blocks: [unclosed")
    with pytest.raises(MapError, match="broken.yaml"):
        load_map_file(bad)


def test_extended_types_are_accepted():
    m = load_map_file(EXTENDED)
    assert m.columns("pcs") == ("energy", "power", "total", "running", "alarm")
    assert [r.width for r in m.blocks[0].registers] == [2, 2, 2, 1]
