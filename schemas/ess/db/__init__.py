"""The database: schema and SQL (schema, bigquery, quote), migrations and partitions, connections
and the pg8000 adapter (connect, pg), transactions (ess.wire.transaction), and the writer by
concern (rowtext, statement, ledger, credit, writer)."""
