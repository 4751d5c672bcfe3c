"""The statements infra/db_grants.sql.tftpl renders (Terraform's db_grants_sql) come from the
product module `ess.db.grants`, which `ess db setup` (the database job) runs;
tests/db/test_grants.py checks both render the same text, then runs these statements only."""

from ess.db.grants import grants_sql, statements

__all__ = ["grants_sql", "statements"]
