"""Decoded rows of one table for a batch of frames, and their views (columns, rows, dicts)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TableBatch:
    """Decoded rows of one table for a batch of frames."""

    table: str
    columns: tuple[str, ...]
    is_int: np.ndarray          # per column: store and print as an integer
    frame: np.ndarray           # per row: index of its frame in the batch
    rack: np.ndarray | None     # per row: rack id (rack table only)
    values: np.ndarray          # rows x columns, float64, NaN where the block was not read
    out_of_range: np.ndarray    # rows x columns, bool
    exact: dict[int, np.ndarray] | None = None   # 64-bit integer columns: per row int or None

    def __len__(self) -> int:
        return len(self.frame)

    def column_lists(self) -> list[list]:
        """Values column by column as Python lists: ints for integer columns, None for missing."""
        ints = np.flatnonzero(self._plain_ints())
        floats = np.flatnonzero(~self.is_int)
        missing = np.isnan(self.values)
        if missing.any():
            # Integer columns cannot hold NaN: convert those with a placeholder, then patch.
            int_part = np.where(missing[:, ints], 0, self.values[:, ints]).astype(np.int64)
        else:
            int_part = self.values[:, ints].astype(np.int64)
        cols: list[list] = [None] * len(self.columns)  # type: ignore[list-item]
        for j, col in zip(ints.tolist(), int_part.T.tolist()):
            cols[j] = col
        for j, col in zip(floats.tolist(), self.values[:, floats].T.tolist()):
            cols[j] = col
        if missing.any():
            for j in np.flatnonzero(missing.any(axis=0)).tolist():
                col = cols[j]
                for i in np.flatnonzero(missing[:, j]).tolist() if col is not None else ():
                    col[i] = None
        for j, col in (self.exact or {}).items():
            cols[j] = col.tolist()
        return cols

    def _plain_ints(self) -> np.ndarray:
        """Integer columns other than the exact (64-bit) ones."""
        if not self.exact:
            return self.is_int
        plain = self.is_int.copy()
        plain[list(self.exact)] = False
        return plain

    def row_lists(self) -> list[list]:
        """Values row by row as Python lists: ints for integer columns, None for missing."""
        out = self.values.astype(object)
        missing = np.isnan(self.values)
        ints = np.flatnonzero(self._plain_ints())
        if ints.size:
            part = self.values[:, ints]
            out[:, ints] = np.where(missing[:, ints], 0, part).astype(np.int64)
        if missing.any():
            out[missing] = None
        for j, col in (self.exact or {}).items():
            out[:, j] = col
        return out.tolist()

    def out_of_range_lists(self) -> list[list[str] | None]:
        """Per row, the sorted names of out-of-range columns, or None when there are none."""
        out: list[list[str] | None] = [None] * len(self.frame)
        if not self.out_of_range.any():
            return out
        order = sorted(range(len(self.columns)), key=self.columns.__getitem__)
        names = [self.columns[j] for j in order]
        rows, cols = np.nonzero(self.out_of_range[:, order])
        for i, j in zip(rows.tolist(), cols.tolist()):
            if out[i] is None:
                out[i] = []
            out[i].append(names[j])  # type: ignore[union-attr]
        return out

    def rows(self) -> list[dict]:
        """Rows as dicts in the `ess decode` layout (without bank_id)."""
        cols = self.column_lists()
        oor = self.out_of_range_lists()
        rows = []
        for i in range(len(self.frame)):
            row: dict = {"table": self.table}
            if self.rack is not None:
                row["rack_id"] = int(self.rack[i])
            row.update(zip(self.columns, (c[i] for c in cols)))
            row["out_of_range"] = oor[i] or []
            rows.append(row)
        return rows


def table_exact(exact: dict, cells: slice, n: int, nrows: int,
                 ncols: int) -> dict[int, np.ndarray] | None:
    """A table's exact columns {column: per-row objects}, rows as `_tables` lays them out."""
    out = {}
    for j in range(ncols):
        parts = [exact.get(cells.start + r * ncols + j) for r in range(nrows)]
        if parts[0] is not None:
            out[j] = np.stack(parts, axis=1).reshape(n * nrows)
    return out or None
