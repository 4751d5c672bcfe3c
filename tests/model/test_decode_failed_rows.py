"""Which rows a batch keeps: a row is dropped only when every block feeding it failed in its own
frame, so a frame's rows never depend on its group-commit neighbours (an all-sentinel SunSpec
row is stored as all NULL next to a failed frame too)."""

from __future__ import annotations

import numpy as np
import pytest
from ess import paths
from ess.decode import decoder_for
from ess.regmap import load_map, load_map_file

SUNSPEC = load_map_file(paths.MAPS_DIR / "examples" / "sunspec-802.yaml")
DEFAULT = load_map("default")


def _rows(dec, raw: np.ndarray, ok: np.ndarray) -> list[list[dict]]:
    """Per frame of the batch, its rows (table, rack, values) in table order."""
    out: list[list[dict]] = [[] for _ in range(raw.shape[0])]
    for tb in dec.decode_batch(raw, ok):
        for frame, row in zip(tb.frame.tolist(), tb.rows(), strict=True):
            out[frame].append(row)
    return out


def _batch(dec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random frames: clean ones, some blocks failed, every block failed, all sentinels."""
    rng = np.random.default_rng(seed)
    n, nblocks = 12, len(dec.block_names)
    raw = rng.integers(0, 1200, size=(n, dec.width)).astype(np.uint16)
    raw[3] = raw[7] = 0xFFFF
    raw[3, rng.integers(0, dec.width, size=dec.width // 3)] = 0x8000
    ok = rng.random((n, nblocks)) > 0.3
    ok[0], ok[1], ok[3] = True, False, True
    return raw, ok


@pytest.mark.parametrize("regmap", [SUNSPEC, DEFAULT], ids=lambda m: m.map_id)
@pytest.mark.parametrize("seed", range(5))
def test_a_frames_rows_do_not_depend_on_its_batch(regmap, seed):
    dec = decoder_for(regmap)
    raw, ok = _batch(dec, seed)
    together = _rows(dec, raw, ok)
    for i in range(raw.shape[0]):
        alone = _rows(dec, raw[i:i + 1], ok[i:i + 1])[0]
        assert together[i] == alone, (regmap.map_id, seed, i)
        fed = {(t, r) for t, _c, nrows, _n, feeds in dec.tables for r in range(nrows)
               if (feeds[r] & ok[i]).any()}
        kept = {(row["table"], row.get("rack_id", 1) - 1) for row in alone}
        assert kept == fed, (regmap.map_id, seed, i)   # dropped: exactly the rows nothing fed


def test_all_sentinel_row_is_kept_next_to_a_failed_frame():
    dec = decoder_for(SUNSPEC)
    assert dec.block_names == ("M802",)
    raw = np.full((2, dec.width), 0xFFFF, dtype=np.uint16)
    raw[1, [f.address - 40070 for f in dec.layout if f.type == "int16"]] = 0x8000
    raw[1, 40122 - 40070:40134 - 40070] = 0x8000          # every scale factor unimplemented
    ok = np.array([[False], [True]])
    alone = _rows(dec, raw[1:], ok[1:])[0]
    assert len(alone) == 1 and alone[0]["table"] == "bank"
    values = {k: v for k, v in alone[0].items() if k not in ("table", "out_of_range")}
    assert values and all(v is None for v in values.values()), values   # all NULL, stored
    together = _rows(dec, raw, ok)
    assert together == [[], alone]    # the failed frame has no row; the sentinel row stays
