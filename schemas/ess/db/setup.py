"""`ess db setup`: a database made ready by its schema owner, in one idempotent run.

The database job (infra/migrate.tf, a Cloud Run job running as the migration identity) runs it on
each Cloud SQL instance: the connecting user takes ownership of schema `public`, migrates the
tables of the maps the sites config uses, creates the coming days' partitions, and grants the
ingest (writers) and export (readers) users what `ess.db.grants` lists. Tables, partitions and
the partition upkeep function are then owned by that user.

On a fresh Cloud SQL for PostgreSQL 15+ instance, schema `public` belongs to `pg_database_owner`
(the database's owner, `cloudsqlsuperuser`) and `PUBLIC` may not create in it; a new IAM user has
no rights at all. The migration user therefore needs the `cloudsqlsuperuser` role once
(`gcloud sql users assign-roles ... --database-roles=cloudsqlsuperuser`, docs/deploy.md); after
the first run it owns the schema and everything in it.
"""

from __future__ import annotations

from ..errors import PermanentError
from . import pg
from .grants import grant_statements
from .migrate import Migration, ensure_partitions, migrate

NOT_ALLOWED = "42501"     # insufficient_privilege
HINT = ("the migration user may not take schema public: on Cloud SQL give it the "
        "cloudsqlsuperuser role once (gcloud sql users assign-roles USER --instance=INSTANCE "
        "--type=CLOUD_IAM_SERVICE_ACCOUNT --database-roles=cloudsqlsuperuser; docs/deploy.md)")


class SetupError(PermanentError):
    """The connecting user cannot own the schema (or grant from it)."""

    reason = "migration_failed"


def own_public_schema(conn) -> bool:
    """Make the connecting user the owner of schema public; True if it changed hands."""
    cur = conn.cursor()
    cur.execute("SELECT pg_get_userbyid(nspowner) = current_user FROM pg_namespace "
                "WHERE nspname = 'public'")
    if cur.fetchone()[0]:
        return False
    try:
        cur.execute("ALTER SCHEMA public OWNER TO CURRENT_USER")
    except Exception as exc:
        conn.rollback()
        if pg.sqlstate(exc) == NOT_ALLOWED:
            raise SetupError(f"{HINT}: {pg.server_message(exc)}") from exc
        raise
    conn.commit()
    return True


def setup(conn, maps: list, writers: list[str], readers: list[str]) -> Migration | None:
    """Own the schema, migrate to `maps`, create the coming partitions, grant; return the
    migration applied (None: the schema was up to date)."""
    own_public_schema(conn)
    applied = migrate(conn, maps)
    ensure_partitions(conn)
    if writers:
        cur = conn.cursor()
        for statement in grant_statements(writers, readers):
            cur.execute(statement)
        conn.commit()
    return applied
