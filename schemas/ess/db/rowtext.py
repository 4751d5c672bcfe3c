"""Row text: a table's rows as one text parameter of the write statement.

One line per row, fields separated by commas, an empty field for NULL:
`ts,site,bank,[rack,]out_of_range,values...`, out_of_range being column names separated by
spaces. One parameter per table (not one array per column) keeps the Python work per row and
PostgreSQL's per-statement work small. A value is Python's `repr` (the shortest text that reads
back as the same double); a large batch whose values are all multiples of 0.001 below 65,536 (as
the decoder rounds them) gets the same text gathered from digit tables with numpy.
"""

from __future__ import annotations

import re

import numpy as np

from ..decode import TableBatch
from ..wire.times import iso

SAFE_TEXT = re.compile(r"[^,\n]+")   # a key field inside one line of a table's rows text


_VECTOR_MIN_CELLS = 100    # from about this many values, numpy formats faster than Python
_digits: tuple[np.ndarray, np.ndarray] | None = None


def _digit_tables() -> tuple[np.ndarray, np.ndarray]:
    """Text of 0..65535 (5 bytes, NUL-padded) and of the fractions .001...999 (4 bytes,
    trailing zeros dropped; 0 is empty), for gathering with numpy."""
    global _digits
    if _digits is None:
        n = np.arange(65536)
        width = 1 + (n >= 10) + (n >= 100) + (n >= 1000) + (n >= 10000)
        ints = np.zeros((65536, 5), np.uint8)
        for k in range(5):
            power = width - 1 - k
            ints[:, k] = np.where(power >= 0, n // 10 ** np.maximum(power, 0) % 10 + 48, 0)
        fracs = np.zeros((1000, 4), np.uint8)
        for i in range(1, 1000):
            text = ("." + f"{i:03d}".rstrip("0")).encode()
            fracs[i, :len(text)] = np.frombuffer(text, np.uint8)
        _digits = (ints, fracs)
    return _digits


def values_lines(values: np.ndarray) -> list[str] | None:
    """Each row of `values` as comma-separated text (an empty field for NaN), formatted with
    numpy; None unless every value is a multiple of 0.001 (as the decoder rounds them)
    below 65,536, which is what the table lookups cover."""
    missing = np.isnan(values)
    known = np.where(missing, 0.0, values)
    # first the magnitude (which also refuses inf): a 64-bit integer column's large value would
    # overflow the int64 cast below
    if not (np.abs(known) < 65536.0).all():
        return None
    thousandths = np.rint(known * 1000.0)
    if not np.array_equal(thousandths / 1000.0, known):
        return None
    whole, frac = np.divmod(np.abs(thousandths.astype(np.int64)), 1000)
    ints, fracs = _digit_tables()
    out = np.empty((*values.shape, 11), np.uint8)
    out[..., 0] = np.where(np.signbit(known), 45, 0)       # "-", also of -0.0 (as repr)
    out[..., 1:6] = ints.take(whole, axis=0)
    out[..., 6:10] = fracs.take(frac, axis=0)
    if missing.any():
        out[missing, :10] = 0
    out[..., 10] = 44                                        # ","
    out[:, -1, 10] = 10                                      # "\n" ends the row
    return out[out != 0].tobytes().decode("ascii").split("\n")[:-1]


def key_heads(frames) -> list[str]:
    """Each frame's key fields as its rows start: "ts,site,bank,"; ValueError for a site id
    that would break the text (a comma or a newline)."""
    for f in frames:
        if not SAFE_TEXT.fullmatch(f.site_id):
            raise ValueError(f"site id {f.site_id!r} cannot be written (comma or newline)")
    return [f"{iso(f.poll_start_us)},{f.site_id},{f.bank_id}," for f in frames]


def rows_text(tb: TableBatch, heads: list[str]) -> str:
    """One table's rows as one text parameter; `heads[i]` is frame i's `key_heads` entry."""
    idx = tb.frame.tolist()
    racks = tb.rack.tolist() if tb.rack is not None else None
    bodies = values_lines(tb.values) if tb.values.size >= _VECTOR_MIN_CELLS else None
    if bodies is None:
        bodies = [",".join("" if v is None else repr(v) for v in vals) if None in vals
                  else ",".join(map(repr, vals)) for vals in tb.row_lists()]
    lines = []
    for r, (body, oor) in enumerate(zip(bodies, tb.out_of_range_lists(), strict=True)):
        head = heads[idx[r]] if racks is None else f"{heads[idx[r]]}{racks[r]},"
        lines.append(head + (" ".join(oor) if oor else "") + "," + body)
    return "\n".join(lines)
