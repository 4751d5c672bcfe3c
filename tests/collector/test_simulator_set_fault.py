"""The faults file's `kind: set`: a column served with a value in a window (the stored value,
through scale, inversion, rack and bank selection), one bit of a bitfield, and errors that name
the fault."""

from __future__ import annotations

import pytest
from ess.decode import decoder_for
from ess.regmap import load_map
from ess_collector.simulator.faults import Fault, FaultError, FaultPlan, load_faults
from ess_collector.simulator.server import Simulator

T0 = 1000.0


def _rows(sim: Simulator, bank: int, t: int) -> list[dict]:
    stores = sim.stores(bank, t)
    return decoder_for(sim.map).decode({n: v.tolist() for n, v in stores.items()})


def _rack(rows: list[dict], rack: int) -> dict:
    return next(r for r in rows if r["table"] == "rack" and r["rack_id"] == rack)


def test_set_raises_and_clears_a_rack_fault_bit_and_pushes_a_threshold():
    plan = FaultPlan([
        Fault("set", column="rack_rack_over_temperature_fault", rack=2, value=1, start=10,
              end=20),
        Fault("set", column="rack_max_cell_temperature", value=52.5, bank=1),
        Fault("set", column="rack_n003_master_rack_communication_fault", value=1, end=5)],
        0, T0)
    sim = Simulator(2, 0, plan, load_map("default"))
    before, during, after = (_rows(sim, 1, int(T0) + s) for s in (3, 12, 25))
    assert [_rack(r, 2)["rack_rack_over_temperature_fault"] for r in (before, during, after)] \
        == [0, 1, 0]
    assert _rack(during, 1)["rack_rack_over_temperature_fault"] == 0, "rack 2 only"
    assert {_rack(during, k)["rack_max_cell_temperature"] for k in range(1, 9)} == {52.5}
    assert _rack(_rows(sim, 2, int(T0) + 12), 1)["rack_max_cell_temperature"] < 45, "bank 1 only"
    bank = [next(r for r in rows if r["table"] == "bank") for rows in (before, during)]
    assert [b["rack_n003_master_rack_communication_fault"] for b in bank] == [1, 0], \
        "an inverted register stores the value asked for"


def test_set_one_bit_of_a_sunspec_bitfield():
    regmap = load_map("examples/sunspec-802")
    sim = Simulator(1, 0, FaultPlan([Fault("set", column="sunspec_evt1", bit=1, value=1),
                                     Fault("set", column="sunspec_soc", value=55.5)], 0, T0),
                    regmap)
    row = _rows(sim, 1, int(T0) + 100)[0]
    assert (row["sunspec_evt1"], row["sunspec_soc"]) == (2, 55.5)
    quiet = _rows(Simulator(1, 0, FaultPlan([], 0, T0), regmap), 1, 1_750_000_000)[0]
    assert quiet["sunspec_evt1"] == 0, "a column a bit alarm reads serves no alarm by itself"


def test_bad_set_faults_are_named(tmp_path):
    with pytest.raises(FaultError, match=r"faults\[0\]: map default has no column 'nope'"):
        Simulator(1, 0, FaultPlan([Fault("set", column="nope", value=1)]), load_map("default"))
    with pytest.raises(FaultError, match=r"has no bit 16"):
        Simulator(1, 0, FaultPlan([Fault("set", column="pcs_status_0", bit=16, value=1)]),
                  load_map("default"))
    path = tmp_path / "faults.yaml"
    path.write_text("faults: [{kind: set, column: bank_soc}]")
    with pytest.raises(FaultError, match=r"faults\[0\]\.value: missing"):
        load_faults(path)
