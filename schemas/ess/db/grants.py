"""The grants of the database users (infra/db_grants.sql.tftpl, Terraform's db_grants_sql, says
the same; tests/db/test_grants.py checks both render one text).

Ingest users (writers) may insert, maintain the alarm episodes (`events`: update, delete), and
create a new day's partitions through
`ess_ensure_day_partitions(date)`, which runs as its owner; export users (readers) may read and
save `data_status`, keep the rollups and drop exported raw days through `ess_retire_raw`.
`ALTER DEFAULT PRIVILEGES` covers the tables (partitions) the owner creates later. Run by the
schema owner: `ess db setup` (the database job) or psql.
"""

from __future__ import annotations


def _names(names: list[str]) -> str:
    if not names or any('"' in n or not n for n in names):
        raise ValueError(f"role names must be non-empty and free of quotes: {names!r}")
    return ", ".join(f'"{n}"' for n in names)


# --- rollups and retention (issue 23): the export's rollup and retention tasks keep the rollup
# tables (those the maps made) and drop exported raw days only through ess_retire_raw.
_UPKEEP_TABLES = ", ".join(f"'{t}_{lv}'" for t in ("bank", "rack", "pcs", "etc")
                           for lv in ("1m", "1h")) + ", 'ess_rollup_state'"


def _upkeep(readers: list[str]) -> list[str]:
    return [f"DO $$ DECLARE t text; BEGIN FOREACH t IN ARRAY ARRAY[{_UPKEEP_TABLES}] LOOP IF "
            "to_regclass(t) IS NOT NULL THEN EXECUTE format('GRANT INSERT, UPDATE, DELETE ON "
            f"TABLE %I TO %s', t, '{_names(readers)}'); END IF; END LOOP; END $$",
            "GRANT EXECUTE ON FUNCTION ess_retire_raw(timestamptz, timestamptz, jsonb, jsonb) "
            f"TO {_names(readers)}"]
# --- end rollups and retention


def grant_statements(writers: list[str], readers: list[str]) -> list[str]:
    """The statements (no trailing `;`) that give `writers` and `readers` their rights."""
    w = _names(writers)
    out = [f"GRANT USAGE ON SCHEMA public TO {_names(writers + readers)}",
           f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {w}",
           f"GRANT UPDATE, DELETE ON TABLE events TO {w}"]    # the episodes ingest maintains
    if readers:
        out += [f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {_names(readers)}",
                f"GRANT INSERT, UPDATE ON TABLE data_status TO {_names(readers)}",
                *_upkeep(readers)]
    out.append(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT ON TABLES TO {w}")
    if readers:
        out.append("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "
                   f"{_names(readers)}")
    out.append(f"GRANT EXECUTE ON FUNCTION ess_ensure_day_partitions(date) TO {w}")
    return out


def grants_sql(databases: list[dict]) -> str:
    """db_grants_sql for databases given as {"label", "writers", "readers"}."""
    return "".join(f"-- {db['label']}\n" + "".join(
        s + ";\n" for s in grant_statements(db["writers"], db["readers"])) for db in databases)


def statements(text: str) -> list[str]:
    """The statements of a db_grants_sql text, without its comment lines."""
    return [line.rstrip(";") for line in text.splitlines()
            if line.strip() and not line.startswith("--")]
