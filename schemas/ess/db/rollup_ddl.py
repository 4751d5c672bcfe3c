"""What `ess db migrate` adds for rollups and retention (issue 23): the rollup tables of the
maps, the rollup job's state, the retention record, an index on the ledger's commit time (how
the rollup job finds what changed) and the retention functions."""

from __future__ import annotations

from ..regmap import RegisterMap
from .quote import ident
from .retention_sql import RETIRE_CURRENT_SQL, RETIRED, retention_functions
from .rollup_schema import ROLLUP_STATE, rollup_specs
from .schema import LEDGER, TableSpec, create_table_sql

COMMITTED_INDEX = f"{LEDGER.name}_committed_idx"
COMMITTED_INDEX_SQL = (f"CREATE INDEX IF NOT EXISTS {ident(COMMITTED_INDEX)} "
                       f"ON {ident(LEDGER.name)} ({ident('committed')})")


def plain_tables(maps: list[RegisterMap]) -> list[TableSpec]:
    """Tables kept as plain tables in both modes: the rollups, the rollup state, the retention
    record (not partitioned: small, and never dropped by retention)."""
    return [s.table for _, s in sorted(rollup_specs(maps).items())] + [ROLLUP_STATE, RETIRED]


def rollup_table_names(maps: list[RegisterMap]) -> set[str]:
    """Names of the rollup tables (their value columns widen with their source's)."""
    return set(rollup_specs(maps))


def upkeep_ddl(cur, notes: list[str]) -> list[str]:
    """The ledger's commit-time index and the retention functions, when missing or older."""
    stmts = []
    cur.execute("SELECT to_regclass(%s) IS NULL", (ident(COMMITTED_INDEX),))
    if cur.fetchone()[0]:
        stmts.append(COMMITTED_INDEX_SQL)
        notes.append(f"index {LEDGER.name}.committed")
    cur.execute(RETIRE_CURRENT_SQL)
    if not cur.fetchone()[0]:
        stmts += retention_functions()
        notes.append("install retention")
    return stmts


def render_upkeep(maps: list[RegisterMap]) -> list[str]:
    """The same for a fresh database (schemas/sql/*.sql)."""
    return ([create_table_sql(s) for s in plain_tables(maps)] + [COMMITTED_INDEX_SQL]
            + retention_functions())
