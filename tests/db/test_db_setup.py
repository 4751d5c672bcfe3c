"""A first deploy's database, as on a fresh Cloud SQL for PostgreSQL 15+ instance (issue 21,
item 5): the database belongs to a `cloudsqlsuperuser`-like group role, schema public to
`pg_database_owner` (PUBLIC may not create in it), and the migration identity is a login role
with no rights. `ess db setup` (what the database job runs) fails with the fix named until the
identity holds the group role (`gcloud sql users assign-roles`), then owns the schema, migrates,
and grants; ingest holding only those grants stores frames of new days."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from ess.cli import main as ess_main
from ess.codec import BlockData, Frame, encode_frames
from ess.db.connect import connect_dsn
from ess.db.quote import ident
from ess.regmap import load_map
from ess.sites import load_sites
from grants import as_user as _as
from grants import run_sql as _run

M = load_map("default")
SITES = "sites:\n  - site_id: own-b\n    timezone: UTC\n    devices:\n" \
        "      - {host: 127.0.0.1, port: 1502, bank_id: 1}\n"


@pytest.fixture
def cloudsql(plain_db):
    """Roles as a fresh Cloud SQL instance has them: the group that owns the database
    (NOLOGIN, CREATEROLE, CREATEDB, like cloudsqlsuperuser), the migration IAM user, and the
    ingest and export IAM users (LOGIN, nothing else)."""
    tag = uuid.uuid4().hex[:8]
    names = {k: f"{k}_{tag}" for k in ("cloudsqlsuperuser", "migrate", "ingest", "export")}
    db = urlsplit(plain_db).path.lstrip("/")
    _run(plain_db, f"CREATE ROLE {ident(names['cloudsqlsuperuser'])} NOLOGIN CREATEROLE CREATEDB",
         *[f"CREATE ROLE {ident(names[k])} LOGIN" for k in ("migrate", "ingest", "export")],
         f"ALTER DATABASE {ident(db)} OWNER TO {ident(names['cloudsqlsuperuser'])}")
    assert _run(plain_db, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace "
                "WHERE nspname = 'public'") == [["pg_database_owner"]]
    yield names
    _run(plain_db, f"ALTER DATABASE {ident(db)} OWNER TO CURRENT_USER",
         f"REASSIGN OWNED BY {ident(names['migrate'])} TO CURRENT_USER",
         *[f"DROP OWNED BY {ident(n)}" for n in names.values()],
         *[f"DROP ROLE {ident(n)}" for n in names.values()])


def _setup(dsn: str, roles: dict, sites, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = ess_main(["db", "setup", "--dsn", _as(dsn, roles["migrate"]), "--config", str(sites),
                     "--writer", roles["ingest"], "--reader", roles["export"]])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_first_deploy_migrates_as_the_migration_identity(plain_db, cloudsql, tmp_path, capsys):
    from ess_functions.ingest.envelope import Message
    from ess_functions.ingest.ingestor import Ingestor
    from ess_functions.ingest.pool import Connections
    from ess_functions.ingest.quarantine import Quarantine

    sites = tmp_path / "sites.yaml"
    sites.write_text(SITES)
    code, out = _setup(plain_db, cloudsql, sites, capsys)
    assert code == 2 and "gcloud sql users assign-roles" in out, out
    _run(plain_db, f"GRANT {ident(cloudsql['cloudsqlsuperuser'])} TO "
         f"{ident(cloudsql['migrate'])}")                       # what assign-roles does
    code, out = _setup(plain_db, cloudsql, sites, capsys)
    assert code == 0 and "applied migration" in out, out
    owners = _run(plain_db, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = "
                  "'public'", "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE "
                  "relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')")
    assert owners == [[cloudsql["migrate"]]]
    assert _run(plain_db, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace "
                "WHERE nspname = 'public'") == [[cloudsql["migrate"]]]

    ingest = _as(plain_db, cloudsql["ingest"])
    ing = Ingestor(load_sites(str(sites)), "main", Connections(lambda: connect_dsn(ingest)),
                   Quarantine(str(tmp_path / "q")))
    day = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=20)
    us = int(day.timestamp() * 1_000_000)
    frame = Frame("own-b", 1, 1, us, us + 20_000, M.map_id, M.version,
                  {b.name: BlockData(registers=Frame.registers_to_bytes([0] * b.count))
                   for b in M.blocks})
    out = ing.handle(Message("m1", encode_frames([frame]), {"site_id": "own-b"}))
    assert out.status == "stored", out
    assert _run(plain_db, f"SELECT pg_get_userbyid(relowner) FROM pg_class "
                f"WHERE relname = 'bank_p{day:%Y%m%d}'") == [[cloudsql["migrate"]]]
    assert _run(_as(plain_db, cloudsql["export"]),
                "SELECT count(*) FROM frames WHERE site_id = 'own-b'") == [[1]]
    code, out = _setup(plain_db, cloudsql, sites, capsys)     # a later run: nothing to do
    assert code == 0 and "schema up to date" in out, out
