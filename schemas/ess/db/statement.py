"""The write statement: one `INSERT ... ON CONFLICT` per table, each a data-modifying CTE that
reads its table's row text (rowtext.py), plus the ledger's, joined into a single statement.

A single statement is atomic on its own, so a message costs one round trip. Its SQL depends
only on its shape (tables, columns, types, conflict rule), so it is built once per shape and
cached, and the driver prepares it once per connection (pg.run_prepared).
"""

from __future__ import annotations

from functools import lru_cache

from ..events.sql import lock_text
from ..regmap import RegisterMap
from .ledger import ledger_cte
from .quote import ident
from .schema import KEYS, sql_type


class Statement:
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
        self.events = False

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
        """`INSERT ... SELECT` from parameter $position+1, a `rows_text` of the table."""
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
        """The frames' ledger rows (a parameter after the tables'; not part of the result)."""
        self.ledger = True
        self.params.append(lines_text)

    def add_events(self, params: list[str]) -> None:
        """The alarm events' lock step (ess.events.sql.lock_text), run once every row is
        written, its text as one more result row: `-1, 0, text` (the last parameters)."""
        self.events = True
        self.params += params

    def sql(self) -> str:
        key = (tuple(self.shape), self.ledger, self.events)
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
        out = ("WITH " + ",\n".join(ctes)
               + f"\nSELECT x.t, count(*), string_agg(x.k, E'\\n') FROM ({union}) AS x "
               "GROUP BY 1")
        if self.events:   # after the rows: an Append runs its branches one after the other
            n = len(self.ctes) + self.ledger
            out += f"\nUNION ALL SELECT -1, 0, ({lock_text(n + 1)})"
        return out


@lru_cache(maxsize=256)
def sql_types(regmap: RegisterMap, table: str) -> tuple[str, ...]:
    """SQL types of a table's value columns, computed once per (map, table)."""
    return tuple(sql_type(f) for f in regmap.table_fields(table))
