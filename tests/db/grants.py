"""The statements infra/db_grants.sql.tftpl renders (Terraform's db_grants_sql), in Python.

tests/db/test_grants.py checks both render the same text, then runs these statements and
nothing else to give the roles it writes and exports as their rights.
"""

from __future__ import annotations


def _names(names: list[str]) -> str:
    if not names or any('"' in n or not n for n in names):
        raise ValueError(f"role names must be non-empty and free of quotes: {names!r}")
    return ", ".join(f'"{n}"' for n in names)


def _database(label: str, writers: list[str], readers: list[str]) -> list[str]:
    w = _names(writers)
    lines = [f"-- {label}", f"GRANT USAGE ON SCHEMA public TO {_names(writers + readers)};",
             f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {w};"]
    if readers:
        lines += [f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {_names(readers)};",
                  f"GRANT INSERT, UPDATE ON TABLE data_status TO {_names(readers)};",
                  *_upkeep(readers)]
    lines.append("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT ON TABLES "
                 f"TO {w};")
    if readers:
        lines.append("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "
                     f"{_names(readers)};")
    lines.append(f"GRANT EXECUTE ON FUNCTION ess_ensure_day_partitions(date) TO {w};")
    return lines


# rollups and retention (issue 23): the export's rollup and retention tasks
_UPKEEP_TABLES = ", ".join(f"'{t}_{lv}'" for t in ("bank", "rack", "pcs", "etc")
                           for lv in ("1m", "1h")) + ", 'ess_rollup_state'"


def _upkeep(readers: list[str]) -> list[str]:
    return ["-- rollups and retention (issue 23): the export's rollup and retention tasks",
            f"DO $$ DECLARE t text; BEGIN FOREACH t IN ARRAY ARRAY[{_UPKEEP_TABLES}] LOOP IF "
            "to_regclass(t) IS NOT NULL THEN EXECUTE format('GRANT INSERT, UPDATE, DELETE ON "
            f"TABLE %I TO %s', t, '{_names(readers)}'); END IF; END LOOP; END $$;",
            "GRANT EXECUTE ON FUNCTION ess_retire_raw(timestamptz, timestamptz, jsonb, jsonb) "
            f"TO {_names(readers)};"]


def grants_sql(databases: list[dict]) -> str:
    """db_grants_sql for databases given as {"label", "writers", "readers"} (ingest users
    write, export users read and save data_status)."""
    return "".join(line + "\n" for db in databases
                   for line in _database(db["label"], db["writers"], db["readers"]))


def statements(text: str) -> list[str]:
    """The statements of a db_grants_sql text, without its comment lines."""
    return [line.rstrip(";") for line in text.splitlines()
            if line.strip() and not line.startswith("--")]
