"""Fixed-scale rounding as docs/data-spec.md states it (ess.docgen): x = raw x scale, stored
as rint(1000 x) / 1000 (numpy's round: ties to even on the double 1000 x), except where 1000 x
is 2^52 or more in magnitude: it is an integer already, rint has nothing to round, and dividing
it by 1000 again would only add a rounding error, so x is kept as it is (1000 x could overflow
to infinity too: the largest double x 0.5 must stay finite)."""

from __future__ import annotations

import numpy as np

INTEGRAL = 2.0 ** 52        # every double from here on is an integer
# the largest magnitude a raw value of each type can have
_MAX_RAW = {"int16": 2.0 ** 15, "uint16": 2.0 ** 16, "int32": 2.0 ** 31, "uint32": 2.0 ** 32,
            "int64": 2.0 ** 63, "uint64": 2.0 ** 64, "float32": 2.0 ** 128, "float64": np.inf}


def big_cells(layout, scaled: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Positions (into `scaled`) of the cells whose 1000 x can reach 2^52."""
    return np.flatnonzero([_MAX_RAW.get(layout[i].type, 1.0) * scale[i] * 1000 >= INTEGRAL
                           for i in scaled])


def round3(x: np.ndarray, big: np.ndarray) -> np.ndarray:
    """np.round(x, 3), columns `big` of x keeping values whose 1000 x is 2^52 or more as they
    are."""
    if not len(big):
        return np.round(x, 3)
    with np.errstate(over="ignore", invalid="ignore"):
        r = np.round(x, 3)
        keep = np.abs(x[:, big] * 1000.0) >= INTEGRAL
    r[:, big] = np.where(keep, x[:, big], r[:, big])
    return r
