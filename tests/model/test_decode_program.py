"""The decoder's compiled program is one frozen object: nothing in it can change once built."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ess.decode import decoder_for
from ess.decode.program import Program, compile_program
from ess.paths import SCHEMAS_DIR
from ess.regmap import load_map, load_map_file


def _arrays(value):
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _arrays(item)
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from _arrays(getattr(value, f.name))


def test_the_program_is_frozen():
    program = decoder_for(load_map_file(SCHEMAS_DIR / "maps/examples/pcs-meter.yaml")).program
    assert isinstance(program, Program)
    with pytest.raises(dataclasses.FrozenInstanceError):
        program.width = 1
    with pytest.raises(TypeError):
        program.block_offset[program.block_names[0]] = 0
    arrays = list(_arrays(program))
    assert len(arrays) > 20 and program.wide
    for a in arrays:
        with pytest.raises(ValueError, match="read-only"):
            a[...] = 0


def test_compiling_twice_gives_the_same_program():
    m = load_map("default")
    a, b = compile_program(m), compile_program(m)
    for f in dataclasses.fields(Program):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y), f.name
    assert a.layout == b.layout and dict(a.block_offset) == dict(b.block_offset)
