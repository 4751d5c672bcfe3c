"""Versioned, idempotent migrations derived from the register maps.

Each run compares the tables the maps need with the live schema. Differences become one new
migration: a numbered, recorded transaction (new tables, added columns, widened types). Nothing
is dropped. Running it again with the same maps is a no-op.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..errors import PermanentError
from ..events.sql import ANNOUNCED as EVENTS_ANNOUNCED
from ..events.sql import LOCK_FUNCTION as EVENTS_LOCK_FUNCTION
from ..events.sql import LOCK_VERSION as EVENTS_LOCK_VERSION
from ..events.sql import TABLE as EVENTS_TABLE
from ..events.sql import announced_ddl as events_announced_ddl
from ..events.sql import ddl as events_ddl
from ..events.sql import lock_function_ddl as events_lock_ddl
from ..regmap import RegisterMap
from ..wire.transaction import reading, transaction
from .partitions import CURRENT_SQL, DEFAULTS_SQL, LOCK_KEY, ensure_ahead
from .quote import ident
from .rollup_ddl import plain_tables, rollup_table_names, upkeep_ddl  # rollups (issue 23)
from .schema import (
    DATA_STATUS,
    ENSURE_PARTITIONS_FN,
    LEDGER,
    PARTITIONS_AHEAD_DAYS,
    TableSpec,
    create_table_sql,
    hypertable_sql,
    partitioned_sql,
    table_specs,
    wider,
)

MIGRATIONS_TABLE = "ess_schema_migrations"
_LOCK_KEY = LOCK_KEY  # serialises concurrent migrate runs (and partition creation)
MODES = ("auto", "timescale", "partitioned")


class MigrationError(PermanentError):
    """The live schema cannot be brought to what the maps need."""

    reason = "migration_failed"


@dataclass(frozen=True)
class Migration:
    """One applied (or planned) migration."""

    version: int
    mode: str
    description: str
    statements: tuple[str, ...]


_SCALE_0 = re.compile(r"^numeric\((\d+),0\)$")     # the catalog's numeric(20,0) is numeric(20)


def _columns(cur, table: str) -> dict[str, str] | None:
    """Live columns and their types, spelled as the schema writes them."""
    cur.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum", (ident(table),))
    rows = cur.fetchall()
    return {name: _SCALE_0.sub(r"numeric(\1)", typ) for name, typ in rows} if rows else None


def _detect_mode(cur, requested: str) -> str:
    cur.execute(f"SELECT mode FROM {ident(MIGRATIONS_TABLE)} ORDER BY version LIMIT 1")
    row = cur.fetchone()
    if row:
        if requested not in ("auto", row[0]):
            raise MigrationError(f"database is in {row[0]} mode; cannot migrate as {requested}")
        return row[0]
    cur.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')")
    created = cur.fetchone()[0]
    if requested == "timescale" and not created:
        # Creating the extension is the DBA's call: only an explicit --mode timescale does it.
        cur.execute("SELECT EXISTS (SELECT 1 FROM pg_available_extensions "
                    "WHERE name = 'timescaledb') AND current_setting('shared_preload_libraries') "
                    "LIKE '%%timescaledb%%'")
        if not cur.fetchone()[0]:
            raise MigrationError("timescale mode requested but the timescaledb extension is not "
                                 "installed and preloaded (shared_preload_libraries) here")
    if requested == "auto":
        return "timescale" if created else "partitioned"
    return requested


def _plan(cur, maps: list[RegisterMap], mode: str,
          first: bool) -> tuple[list[str], list[str]]:
    stmts, notes = [], []
    specs = table_specs(maps)
    if first and mode == "timescale":
        stmts.append("CREATE EXTENSION IF NOT EXISTS timescaledb")
    if mode == "partitioned":
        stmts += _partition_upkeep(cur, first, notes)
    table_specs_names = set(specs)         # the ledger's columns are never widened
    plain = [DATA_STATUS]
    # --- rollups and retention (issue 23): plain tables in both modes, widened with their
    # sources; a rollup column added with its source column needs no note of its own.
    rollups = rollup_table_names(maps)
    table_specs_names |= rollups
    plain += plain_tables(maps)
    # --- end rollups and retention
    for spec in [*specs.values(), LEDGER, *plain]:
        live = _columns(cur, spec.name)
        if live is None:
            if spec in plain:
                stmts.append(create_table_sql(spec))
            else:
                stmts += ([create_table_sql(spec), hypertable_sql(spec)] if mode == "timescale"
                          else partitioned_sql(spec))
            notes.append(f"create {spec.name}")
            continue
        stmts += _drop_ts_index(cur, spec, notes)
        for name, typ in spec.values:
            if name not in live:
                stmts.append(f"ALTER TABLE {ident(spec.name)} ADD COLUMN {ident(name)} {typ}")
                if spec.name not in rollups:
                    notes.append(f"add {spec.name}.{name}")
            elif (spec.name in table_specs_names and live[name] != typ and typ != "text[]"
                  and wider(live[name], typ) != live[name]):
                stmts.append(f"ALTER TABLE {ident(spec.name)} ALTER COLUMN {ident(name)} "
                             f"TYPE {typ} USING {ident(name)}::{typ}")
                notes.append(f"widen {spec.name}.{name} to {typ}")
    stmts += _events_plan(cur, notes)
    stmts += upkeep_ddl(cur, notes)   # rollups and retention (issue 23)
    return stmts, notes


def _events_plan(cur, notes: list[str]) -> list[str]:
    """The events table (docs/events.md): created, or brought up to date (its `announced`
    column, the lock function's version)."""
    live = _columns(cur, EVENTS_TABLE)
    if live is None:
        notes.append(f"create {EVENTS_TABLE}")
        return events_ddl()
    stmts = []
    if EVENTS_ANNOUNCED[0] not in live:
        stmts += events_announced_ddl()
        notes.append(f"add {EVENTS_TABLE}.{EVENTS_ANNOUNCED[0]}")
    cur.execute("SELECT obj_description(to_regprocedure(%s), 'pg_proc')",
                (EVENTS_LOCK_FUNCTION,))
    if cur.fetchone()[0] != EVENTS_LOCK_VERSION:
        stmts += events_lock_ddl()
        notes.append("install the events lock function")
    return stmts


def _partition_upkeep(cur, first: bool, notes: list[str]) -> list[str]:
    """Partitioned mode: the upkeep functions (first run, or a database from before them or
    from before they ran as their owner), and draining any default partition into daily ones
    (older versions created defaults)."""
    stmts = []
    cur.execute(CURRENT_SQL)
    if first or not cur.fetchone()[0]:
        stmts += ENSURE_PARTITIONS_FN
        if not first:
            notes.append("install partition upkeep")
    cur.execute(DEFAULTS_SQL)
    for (parent,) in cur.fetchall():
        stmts.append(f"SELECT ess_drain_default_partition(to_regclass('{ident(parent)}'))")
        notes.append(f"drain {parent}_default")
    return stmts


def _drop_ts_index(cur, spec: TableSpec, notes: list[str]) -> list[str]:
    """TimescaleDB's default index on ts, which the primary key makes redundant (issue 14)."""
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (ident(spec.name + "_ts_idx"),))
    if not cur.fetchone()[0]:
        return []
    notes.append(f"drop {spec.name}_ts_idx")
    return [f"DROP INDEX IF EXISTS {ident(spec.name + '_ts_idx')}"]


def migrate(conn, maps: list[RegisterMap], mode: str = "auto",
            dry_run: bool = False) -> Migration | None:
    """Bring the database to what `maps` need; return the migration applied, or None."""
    if mode not in MODES:
        raise MigrationError(f"mode must be one of {MODES}, got {mode!r}")
    with transaction(conn, commit=not dry_run) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        cur.execute(f"CREATE TABLE IF NOT EXISTS {ident(MIGRATIONS_TABLE)} ("
                    "version integer PRIMARY KEY, mode text NOT NULL, description text NOT NULL,"
                    " checksum text NOT NULL, statements text[] NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())")
        mode = _detect_mode(cur, mode)
        cur.execute(f"SELECT coalesce(max(version), 0) FROM {ident(MIGRATIONS_TABLE)}")
        last = cur.fetchone()[0]
        stmts, notes = _plan(cur, maps, mode, first=last == 0)
        if not stmts or dry_run:    # nothing written: committing (or not) changes nothing
            return Migration(last + 1, mode, "; ".join(notes), tuple(stmts)) if stmts else None
        for s in stmts:
            cur.execute(s)
        m = Migration(last + 1, mode, "; ".join(notes), tuple(stmts))
        checksum = hashlib.sha256("\n".join(stmts).encode()).hexdigest()
        cur.execute(f"INSERT INTO {ident(MIGRATIONS_TABLE)} (version, mode, description, "
                    "checksum, statements) VALUES (%s, %s, %s, %s, %s)",
                    (m.version, m.mode, m.description, checksum, list(stmts)))
        return m


def ensure_partitions(conn, days_ahead: int = PARTITIONS_AHEAD_DAYS) -> int:
    """Create daily partitions up to `days_ahead` for every partitioned table (partitioned
    mode; a no-op for hypertables)."""
    return ensure_ahead(conn, days_ahead)


def mode_of(conn) -> str | None:
    """The database's storage mode (timescale or partitioned), None before the first migration."""
    with reading(conn) as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (ident(MIGRATIONS_TABLE),))
        if not cur.fetchone()[0]:
            return None
        cur.execute(f"SELECT mode FROM {ident(MIGRATIONS_TABLE)} ORDER BY version LIMIT 1")
        row = cur.fetchone()
        return row[0] if row else None
