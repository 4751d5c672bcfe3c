"""Batched, idempotent writes of decoded frames: one atomic statement per batch.

`write_frames` decodes and writes in one call. `decode_for_write`, `merge` and `write_decoded`
split that up, so that several messages decoded apart can be written in one statement (group
commit) while each message still learns exactly which of its rows were stored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from ..decode import TableBatch, decoder_for
from ..regmap import RegisterMap
from .quote import ident
from .schema import KEYS, sql_type

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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

    def share(self, decoded: Decoded, owned: set[FrameKey]) -> WriteResult:
        """The part of a group write that belongs to one message: its own rows, and what was
        stored for the frames it `owned` (a frame two messages carried is credited once)."""
        part = WriteResult(frames=decoded.frames, out_of_range=list(decoded.out_of_range))
        for _, frames, tables in decoded.groups:
            mine = [frame_key(f) for f in frames if frame_key(f) in owned]
            for tb in tables:
                part.rows[tb.table] = part.rows.get(tb.table, 0) + len(tb)
                part.inserted[tb.table] = part.inserted.get(tb.table, 0) + sum(
                    self.stored[(tb.table, k)] for k in mine)
        return part


def _literal(values: list, is_text: bool = False) -> str:
    """A PostgreSQL array literal; building it here is far cheaper than per-element conversion."""
    if is_text:
        body = ",".join("NULL" if v is None else '"' + v.replace("\\", "\\\\")
                        .replace('"', '\\"') + '"' for v in values)
    elif None in values:
        body = ",".join("NULL" if v is None else repr(v) for v in values)
    else:
        body = ",".join(map(repr, values))
    return "{" + body + "}"


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

    def add(self, table: str, columns: tuple[str, ...], types: tuple[str, ...],
            arrays: list[str], on_conflict: str) -> None:
        self.shape.append((table, columns, types, on_conflict))
        first = len(self.params) + 1
        self.params += arrays
        self.tables.append(table)
        key = (len(self.ctes), first, table, columns, types, on_conflict)
        cte = self._cte_cache.get(key)
        if cte is None:
            cte = self._cte_cache[key] = self._cte(len(self.ctes), first, table, columns, types,
                                                   on_conflict)
        self.ctes.append(cte)

    @staticmethod
    def _cte(position: int, first: int, table: str, columns: tuple[str, ...],
             types: tuple[str, ...], on_conflict: str) -> str:
        keys = KEYS[table]
        names = [k for k, _ in keys] + list(columns)
        typs = [t for _, t in keys] + list(types) + ["text"]
        args = ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(typs))
        alias = [f"c{i}" for i in range(len(names))] + ["oor"]
        select = ", ".join(ident(a) for a in alias[:-1]) + ", string_to_array(u.oor, ',')"
        conflict_keys = ", ".join(ident(k) for k, _ in keys[1:]) + ", ts"
        if on_conflict == "update":
            sets = ", ".join(f"{ident(c)} = EXCLUDED.{ident(c)}"
                             for c in list(columns) + ["out_of_range"])
            tail = f"ON CONFLICT ({conflict_keys}) DO UPDATE SET {sets}"
        else:
            tail = "ON CONFLICT DO NOTHING"
        return (
            f"{ident('w' + str(position))} AS (INSERT INTO {ident(table)} "
            f"({', '.join(ident(n) for n in names)}, {ident('out_of_range')}) "
            f"SELECT {select} FROM unnest({args}) AS u({', '.join(ident(a) for a in alias)}) "
            f"{tail} RETURNING {ident('site_id')}, {ident('bank_id')}, "
            f"(extract(epoch FROM {ident('ts')}) * 1000000)::bigint AS {ident('us')})")

    def sql(self) -> str:
        key = tuple(self.shape)
        if key not in self._sql_cache:
            self._sql_cache[key] = self._build()
        return self._sql_cache[key]

    def _build(self) -> str:
        """Rows stored per (CTE, frame): `t, site_id, bank_id, us, count`."""
        union = " UNION ALL ".join(f"SELECT {i} AS {ident('t')}, * FROM {ident('w' + str(i))}"
                                   for i in range(len(self.ctes)))
        return ("WITH " + ",\n".join(self.ctes)
                + f"\nSELECT x.*, count(*) FROM ({union}) AS x GROUP BY 1, 2, 3, 4")


def _ts(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat()


def _table_arrays(tb: TableBatch, frames, stamps: list[str]) -> list[str]:
    """Array literals for one table: keys, value columns, out_of_range. `stamps[i]` is frame
    i's poll time as text (formatted once per frame, not once per row)."""
    idx = tb.frame.tolist()
    arrays = [_literal([stamps[i] for i in idx]),
              _literal([frames[i].site_id for i in idx], is_text=True),
              _literal([frames[i].bank_id for i in idx])]
    if tb.rack is not None:
        arrays.append(_literal(tb.rack.tolist()))
    arrays += [_literal(col) for col in tb.column_lists()]
    arrays.append(_literal([",".join(o) if o else None for o in tb.out_of_range_lists()],
                           is_text=True))
    return arrays


def dedupe(frames) -> tuple[list, int]:
    """Drop repeated (site, bank, poll start) within one batch; return frames and how many."""
    seen, out = set(), []
    for f in frames:
        key = (f.site_id, f.bank_id, f.poll_start_us)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out, len(frames) - len(out)


@dataclass
class Decoded:
    """Frames decoded and ready to write: per map, its frames and one TableBatch per table."""

    groups: list[tuple[RegisterMap, list, list[TableBatch]]]
    out_of_range: list[dict]
    frames: int

    @property
    def keys(self) -> list[FrameKey]:
        return [frame_key(f) for _, frames, _ in self.groups for f in frames]


def decode_for_write(frames, maps: dict[tuple[str, int], RegisterMap]) -> Decoded:
    """Decode frames, grouped by their map (the caller has checked every map is known)."""
    by_map: dict[tuple[str, int], list] = {}
    for f in frames:
        by_map.setdefault((f.map_id, f.map_version), []).append(f)
    groups, summary = [], []
    for key, group in by_map.items():
        tables, oor = decoder_for(maps[key]).decode_frames(group)
        groups.append((maps[key], group, tables))
        summary += oor
    return Decoded(groups, summary, len(frames))


def _concat(batches: list[TableBatch], offsets: list[int]) -> TableBatch:
    first = batches[0]
    return TableBatch(
        first.table, first.columns, first.is_int,
        np.concatenate([b.frame + off for b, off in zip(batches, offsets)]),
        None if first.rack is None else np.concatenate([b.rack for b in batches]),
        np.vstack([b.values for b in batches]), np.vstack([b.out_of_range for b in batches]))


def merge(parts: list[Decoded]) -> Decoded:
    """One Decoded holding every part's frames: a single statement writes them all."""
    if len(parts) == 1:
        return parts[0]
    by_map: dict[tuple[str, int], list] = {}
    for part in parts:
        for regmap, frames, tables in part.groups:
            by_map.setdefault(regmap.key, []).append((regmap, frames, tables))
    groups = []
    for items in by_map.values():
        offsets, frames, n = [], [], 0
        for _, fs, _ in items:
            offsets.append(n)
            frames += fs
            n += len(fs)
        tables = [_concat([tables[i] for _, _, tables in items], offsets)
                  for i in range(len(items[0][2]))]
        groups.append((items[0][0], frames, tables))
    return Decoded(groups, [o for p in parts for o in p.out_of_range],
                   sum(p.frames for p in parts))


def write_decoded(conn, decoded: Decoded, on_conflict: str = "nothing") -> WriteResult:
    """Store every row of `decoded` in one atomic statement: all of them or none."""
    result = WriteResult(frames=decoded.frames, out_of_range=list(decoded.out_of_range))
    stmt = _Statement()
    for regmap, group, tables in decoded.groups:
        stamps = [_ts(f.poll_start_us) for f in group]
        for tb in tables:
            if not len(tb):
                continue
            types = regmap.cache.get(("sql_types", tb.table))
            if types is None:
                types = tuple(sql_type(f) for f in regmap.table_fields(tb.table))
                regmap.cache[("sql_types", tb.table)] = types
            stmt.add(tb.table, tb.columns, types, _table_arrays(tb, group, stamps), on_conflict)
            result.rows[tb.table] = result.rows.get(tb.table, 0) + len(tb)
            result.inserted.setdefault(tb.table, 0)
    if stmt.ctes:
        for t, site, bank, us, n in run(conn, stmt.sql(), stmt.params):
            table = stmt.tables[t]
            result.inserted[table] += n
            result.stored[(table, (site, bank, us))] += n
    return result


def write_frames(conn, frames, maps: dict[tuple[str, int], RegisterMap],
                 on_conflict: str = "nothing") -> WriteResult:
    """Decode frames (grouped by map) and store all their rows in one atomic statement.

    The caller resolves maps first. A message is stored whole or not at all: the statement
    either commits every row or none. Frames repeated inside the batch are written once and
    count as duplicates.
    """
    unique, repeated = dedupe(frames)
    result = write_decoded(conn, decode_for_write(unique, maps), on_conflict)
    result.frames = len(frames)
    for table, n in list(result.rows.items()):
        result.rows[table] = n + repeated * (n // max(len(unique), 1))
    return result


def run(conn, sql: str, params: list[str]) -> list:
    """Execute one statement in autocommit mode; return its rows.

    `params` are text values for $1..$n. The statement is prepared once per connection, so the
    server parses and plans it once, not per message.
    """
    if not conn.autocommit:
        conn.rollback()
        conn.autocommit = True
    prepared = conn.__dict__.setdefault("_ess_prepared", {})
    if sql not in prepared:
        prepared[sql] = conn.prepare_statement(sql, oids=())
    name, columns, input_funcs = prepared[sql]
    context = conn.execute_named(name, params, columns, input_funcs, sql)
    return context.rows or []
