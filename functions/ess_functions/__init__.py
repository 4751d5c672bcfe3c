"""Logic behind the Cloud Run functions (ingest, export) and their command-line twins."""
