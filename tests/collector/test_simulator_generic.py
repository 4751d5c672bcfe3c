"""The simulator's model of any map: decodable, deterministic, no sentinel or NULL served."""

import pytest
from ess.decode import Decoder
from ess.regmap import load_map
from ess_collector.simulator.generic import MapModel


@pytest.mark.parametrize("name", ["examples/pcs-meter", "examples/sunspec-802"])
def test_every_column_decodes_to_a_number(name):
    m = load_map(name)
    model = MapModel(1, 0, m)
    for t in range(1_700_000_000, 1_700_000_000 + 600, 37):
        words = model.registers(t)
        assert words == MapModel(1, 0, m).registers(t)
        (row,) = Decoder(m).decode(words)
        assert all(v is not None for v in row.values()), row
