"""Batched, idempotent writes of decoded frames: one atomic statement per batch.

`write_frames` stores one batch; `write_messages` stores several messages in one statement
(group commit) and tells each message exactly which of its rows were stored.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from weakref import WeakKeyDictionary

import numpy as np

from ..decode import TableBatch, decoder_for
from ..regmap import RegisterMap
from ..wire.times import iso
from .ledger import ledger_cte, ledger_lines, oor_counts
from .partitions import with_partitions
from .quote import ident
from .schema import KEYS, sql_type

FrameKey = tuple[str, int, int]   # (site_id, bank_id, poll start in microseconds)


def frame_key(frame) -> FrameKey:
    return (frame.site_id, frame.bank_id, frame.poll_start_us)


@dataclass
class WriteResult:
    """What one write did, per table; `stored` breaks it down by (table, frame)."""

    frames: int = 0
    rows: dict[str, int] = field(default_factory=dict)        # rows offered
    inserted: dict[str, int] = field(default_factory=dict)    # rows stored (or updated)
    out_of_range: list[dict] = field(default_factory=list)
    stored: Counter = field(default_factory=Counter)          # (table, FrameKey) -> rows

    @property
    def duplicates(self) -> int:
        return sum(self.rows.values()) - sum(self.inserted.values())


_SAFE_TEXT = re.compile(r"[^,\n]+")   # a key field inside one line of a table's rows text


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


def _values_lines(values: np.ndarray) -> list[str] | None:
    """Each row of `values` as comma-separated text (an empty field for NaN), formatted with
    numpy; None unless every value is a multiple of 0.001 (as the decoder rounds them)
    below 65,536, which is what the table lookups cover."""
    missing = np.isnan(values)
    known = np.where(missing, 0.0, values)
    if not np.isfinite(known).all():                 # a float32 register can hold inf
        return None
    thousandths = np.rint(known * 1000.0)
    if not np.array_equal(thousandths / 1000.0, known):
        return None
    m = thousandths.astype(np.int64)
    whole, frac = np.divmod(np.abs(m), 1000)
    if whole.size and whole.max() > 65535:
        return None
    ints, fracs = _digit_tables()
    out = np.empty((*values.shape, 11), np.uint8)
    out[..., 0] = np.where(m < 0, 45, 0)                    # "-"
    out[..., 1:6] = ints.take(whole, axis=0)
    out[..., 6:10] = fracs.take(frac, axis=0)
    if missing.any():
        out[missing, :10] = 0
    out[..., 10] = 44                                        # ","
    out[:, -1, 10] = 10                                      # "\n" ends the row
    return out[out != 0].tobytes().decode("ascii").split("\n")[:-1]


def _rows_text(tb: TableBatch, heads: list[str]) -> str:
    """One table's rows as a single text parameter: one line per row, fields separated by
    commas, an empty field for NULL. `heads[i]` is frame i's key fields ("ts,site,bank,").

    A line is `keys,out_of_range,values...`; out_of_range lists column names separated by
    spaces. One parameter per table (not one array per column) keeps the Python work per row
    and PostgreSQL's per-statement work small.
    """
    idx = tb.frame.tolist()
    racks = tb.rack.tolist() if tb.rack is not None else None
    bodies = _values_lines(tb.values) if tb.values.size >= _VECTOR_MIN_CELLS else None
    if bodies is None:
        bodies = [",".join("" if v is None else repr(v) for v in vals) if None in vals
                  else ",".join(map(repr, vals)) for vals in tb.row_lists()]
    lines = []
    for r, (body, oor) in enumerate(zip(bodies, tb.out_of_range_lists(), strict=True)):
        head = heads[idx[r]] if racks is None else f"{heads[idx[r]]}{racks[r]},"
        lines.append(head + (" ".join(oor) if oor else "") + "," + body)
    return "\n".join(lines)


class _Statement:
    """One INSERT per table, joined into a single statement with data-modifying CTEs.

    A single statement is atomic on its own, so a message costs one round trip.
    """

    _sql_cache: dict[tuple, str] = {}
    _cte_cache: dict[tuple, str] = {}

    def __init__(self) -> None:
        self.ctes: list[str] = []
        self.params: list[str] = []
        self.tables: list[str] = []
        self.shape: list[tuple] = []
        self.ledger = False

    def add(self, table: str, columns: tuple[str, ...], types: tuple[str, ...],
            rows_text: str, on_conflict: str) -> None:
        self.shape.append((table, columns, types, on_conflict))
        self.params.append(rows_text)
        self.tables.append(table)
        key = (len(self.ctes), table, columns, types, on_conflict)
        cte = self._cte_cache.get(key)
        if cte is None:
            cte = self._cte_cache[key] = self._cte(len(self.ctes), table, columns, types,
                                                   on_conflict)
        self.ctes.append(cte)

    @staticmethod
    def _cte(position: int, table: str, columns: tuple[str, ...], types: tuple[str, ...],
             on_conflict: str) -> str:
        """`INSERT ... SELECT` from parameter $position+1, a `_rows_text` of the table."""
        keys = KEYS[table]
        names = [k for k, _ in keys] + ["out_of_range"] + list(columns)
        fields = [f"(r.a)[{i + 1}]::{t}" for i, (_, t) in enumerate(keys)]
        fields.append(f"string_to_array((r.a)[{len(keys) + 1}], ' ')")
        fields += [f"(r.a)[{len(keys) + 2 + i}]::{t}" for i, t in enumerate(types)]
        conflict_keys = ", ".join(ident(k) for k, _ in keys[1:]) + ", ts"
        if on_conflict == "update":
            sets = ", ".join(f"{ident(c)} = EXCLUDED.{ident(c)}"
                             for c in list(columns) + ["out_of_range"])
            tail = f"ON CONFLICT ({conflict_keys}) DO UPDATE SET {sets}"
        else:
            tail = "ON CONFLICT DO NOTHING"
        # OFFSET 0 keeps the split from being inlined (and repeated) into every field.
        return (
            f"{ident('w' + str(position))} AS (INSERT INTO {ident(table)} "
            f"({', '.join(ident(n) for n in names)}) "
            f"SELECT {', '.join(fields)} FROM (SELECT string_to_array(l, ',', '') AS a "
            f"FROM string_to_table(${position + 1}::text, E'\\n') AS l OFFSET 0) AS r "
            f"{tail} RETURNING {ident('site_id')}, {ident('bank_id')}, "
            f"(extract(epoch FROM {ident('ts')}) * 1000000)::bigint AS {ident('us')})")

    def add_ledger(self, lines_text: str) -> None:
        """The frames' ledger rows (the last parameter; not part of the result rows)."""
        self.ledger = True
        self.params.append(lines_text)

    def sql(self) -> str:
        key = (tuple(self.shape), self.ledger)
        if key not in self._sql_cache:
            self._sql_cache[key] = self._build()
        return self._sql_cache[key]

    def _build(self) -> str:
        """Per CTE: `t, rows stored, "site,bank,us" of each stored row joined by newlines`.

        One result row per table (not per frame) keeps the driver's work per message small.
        """
        key = f"{ident('site_id')} || ',' || {ident('bank_id')} || ',' || {ident('us')}"
        union = " UNION ALL ".join(f"SELECT {i} AS {ident('t')}, {key} AS {ident('k')} "
                                   f"FROM {ident('w' + str(i))}" for i in range(len(self.ctes)))
        if not union:                  # only ledger rows (every block of every frame failed)
            union = f"SELECT 0 AS {ident('t')}, '' AS {ident('k')} WHERE false"
        ctes = self.ctes + ([ledger_cte(len(self.ctes))] if self.ledger else [])
        return ("WITH " + ",\n".join(ctes)
                + f"\nSELECT x.t, count(*), string_agg(x.k, E'\\n') FROM ({union}) AS x "
                "GROUP BY 1")


@dataclass
class Decoded:
    """Frames decoded and ready to write: per map, its frames and one TableBatch per table."""

    groups: list[tuple[RegisterMap, list, list[TableBatch]]]
    out_of_range: list        # the summary; with `parts`, one summary per part
    frames: int


def decode_for_write(frames, maps: dict[tuple[str, int], RegisterMap],
                     parts: list[list[int]] | None = None) -> Decoded:
    """Decode frames, grouped by their map (the caller has checked every map is known).

    `parts` (lists of indices into `frames`) asks for one out-of-range summary per part.
    """
    by_map: dict[tuple[str, int], list[int]] = {}
    for i, f in enumerate(frames):
        by_map.setdefault((f.map_id, f.map_version), []).append(i)
    groups: list = []
    summary: list = [[] for _ in parts] if parts is not None else []
    for key, idx in by_map.items():
        group = [frames[i] for i in idx]
        local = None
        if parts is not None:
            where = {i: n for n, i in enumerate(idx)}
            local = [[where[i] for i in p if i in where] for p in parts]
        tables, oor = decoder_for(maps[key]).decode_frames(group, local)
        groups.append((maps[key], group, tables))
        if parts is None:
            summary += oor
        else:
            for mine, part in zip(summary, oor, strict=True):
                mine += part
    return Decoded(groups, summary, len(frames))


def write_decoded(conn, decoded: Decoded, on_conflict: str = "nothing",
                  published: dict[FrameKey, str] | None = None) -> WriteResult:
    """Store every row of `decoded` and each frame's ledger row in one atomic statement: all of
    them or none. `published` gives a frame's message publish time (ISO 8601)."""
    result = WriteResult(frames=decoded.frames, out_of_range=list(decoded.out_of_range))
    stmt = _Statement()
    lines: list[str] = []
    for regmap, group, tables in decoded.groups:
        heads = [f"{iso(f.poll_start_us)},{f.site_id},{f.bank_id}," for f in group]
        for f in group:
            if not _SAFE_TEXT.fullmatch(f.site_id):
                raise ValueError(f"site id {f.site_id!r} cannot be written (comma or newline)")
        for tb in tables:
            if not len(tb):
                continue
            stmt.add(tb.table, tb.columns, _sql_types(regmap, tb.table), _rows_text(tb, heads),
                     on_conflict)
            result.rows[tb.table] = result.rows.get(tb.table, 0) + len(tb)
            result.inserted.setdefault(tb.table, 0)
        lines += ledger_lines(group, oor_counts(group, tables), published, heads)
    if lines:
        stmt.add_ledger("\n".join(lines))
    if stmt.ctes or lines:
        # partitioned mode: a day without partitions gets them, then one more try
        polls = (f.poll_start_us for _, group, _ in decoded.groups for f in group)
        for t, n, keys in with_partitions(conn, lambda: run(conn, stmt.sql(), stmt.params),
                                          polls):
            table = stmt.tables[t]
            result.inserted[table] += n
            for key, count in Counter(keys.split("\n")).items():
                site, bank, us = key.rsplit(",", 2)
                result.stored[(table, (site, int(bank), int(us)))] += count
    return result


def write_messages(conn, messages: list[list], maps: dict[tuple[str, int], RegisterMap],
                   on_conflict: str = "nothing",
                   published: list | None = None) -> list[WriteResult]:
    """Decode and store several messages' frames in one atomic statement (all rows or none);
    return one WriteResult per message.

    A frame carried more than once (by two messages, or twice by one) is written once and
    credited to its first carrier: the other copies count as duplicates. Each message gets
    its own out-of-range summary. `published[m]` is message m's publish time (a datetime or
    None), kept in the ledger row of each frame it carries first.
    """
    position: dict[FrameKey, int] = {}          # frame -> its index in `unique`
    unique: list = []
    carried: list[dict[FrameKey, int]] = []      # per message: its frames (first carrier: own)
    owned: list[set[FrameKey]] = []
    for frames in messages:
        mine: dict[FrameKey, int] = {}
        owned.append(set())
        for f in frames:
            key = frame_key(f)
            if key not in position:
                position[key] = len(unique)
                unique.append(f)
                owned[-1].add(key)
            mine[key] = position[key]
        carried.append(mine)
    decoded = decode_for_write(unique, maps, [list(c.values()) for c in carried])
    times = {k: t.isoformat() for m, t in enumerate(published or []) if t is not None
             for k in owned[m]}
    total = write_decoded(conn, decoded, on_conflict, times)
    offered: Counter = Counter()               # (table, frame key) -> rows
    for _, group, tables in decoded.groups:
        for tb in tables:
            counts = np.bincount(tb.frame, minlength=len(group)).tolist()
            for f, n in zip(group, counts):
                if n:
                    offered[(tb.table, frame_key(f))] += n
    tables_in_order = list(total.rows)
    results = []
    for m, frames in enumerate(messages):
        res = WriteResult(frames=len(frames), out_of_range=decoded.out_of_range[m])
        keys = [frame_key(f) for f in frames]
        for table in tables_in_order:
            res.rows[table] = sum(offered[(table, k)] for k in keys)
            res.inserted[table] = sum(total.stored[(table, k)] for k in owned[m])
            for k in owned[m]:
                if total.stored[(table, k)]:
                    res.stored[(table, k)] = total.stored[(table, k)]
        results.append(res)
    return results


def write_frames(conn, frames, maps: dict[tuple[str, int], RegisterMap],
                 on_conflict: str = "nothing", published=None) -> WriteResult:
    """Decode frames (grouped by map) and store all their rows in one atomic statement.

    The caller resolves maps first. A batch is stored whole or not at all. Frames repeated
    inside the batch are written once and count as duplicates.
    """
    return write_messages(conn, [frames], maps, on_conflict, [published])[0]


# Per connection: SQL text -> pg8000's prepared statement (name, columns, input functions).
# Entries go with their connection.
_prepared: WeakKeyDictionary = WeakKeyDictionary()


@lru_cache(maxsize=256)
def _sql_types(regmap: RegisterMap, table: str) -> tuple[str, ...]:
    """SQL types of a table's value columns, computed once per (map, table)."""
    return tuple(sql_type(f) for f in regmap.table_fields(table))


def run(conn, sql: str, params: list[str]) -> list:
    """Execute one statement in autocommit mode; return its rows.

    `params` are text values for $1..$n. The statement is prepared once per connection, so the
    server parses and plans it once, not per message.
    """
    if not conn.autocommit:
        conn.rollback()
        conn.autocommit = True
    prepared = _prepared.get(conn)
    if prepared is None:
        prepared = _prepared[conn] = {}
    if sql not in prepared:
        prepared[sql] = conn.prepare_statement(sql, oids=())
    name, columns, input_funcs = prepared[sql]
    context = conn.execute_named(name, params, columns, input_funcs, sql)
    return context.rows or []
