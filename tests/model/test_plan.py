"""Read plan: derived from the map, at most 125 registers a request."""

import pytest
from ess.plan import MAX_REGISTERS_PER_READ, read_plan
from ess.regmap import load_map, parse_map
from hypothesis import given
from hypothesis import strategies as st


def test_default_plan_matches_the_original_2021_reads():
    """The default map is read in the requests the original 2021 design made."""
    plan = [(r.block, r.address, r.count) for r in read_plan(load_map("default"))]
    assert plan == [("BMS1", 0, 125), ("BMS1", 125, 12), ("BMS2", 200, 125), ("BMS2", 325, 125),
                    ("BMS2", 450, 16), ("PCS", 500, 89), ("ETC", 600, 5)]


def _map(addresses, count=400):
    return parse_map({"map_id": "p", "version": 1, "blocks": [{
        "name": "B", "start": 0, "count": count, "scaled": True, "registers": [
            {"address": a, "table": "etc", "column": f"c{a}", "type": "int16", "scale": 1}
            for a in addresses]}]})


def test_gap_is_skipped_when_bridging_saves_nothing():
    plan = [(r.address, r.count) for r in read_plan(_map([0, 1, 300, 301]))]
    assert plan == [(0, 2), (300, 2)]


def test_gap_is_read_when_it_saves_a_request():
    plan = [(r.address, r.count) for r in read_plan(_map([0, 1, 100, 101]))]
    assert plan == [(0, 102)]


def test_limit_is_validated():
    with pytest.raises(ValueError):
        read_plan(load_map("default"), limit=126)


@given(st.sets(st.integers(0, 399), min_size=1, max_size=120))
def test_plan_covers_every_register_within_limits(addresses):
    plan = read_plan(_map(sorted(addresses)))
    covered = set()
    for r in plan:
        assert 1 <= r.count <= MAX_REGISTERS_PER_READ
        covered |= set(range(r.address, r.address + r.count))
    assert addresses <= covered
    starts = [r.address for r in plan]
    assert starts == sorted(starts)
