"""The local stack: real PostgreSQL+TimescaleDB, Pub/Sub and GCS emulators, functions-framework.

Modules: `procs` (managed subprocesses), `postgres`, `pubsub`, `gcs`, `functions`.
"""
