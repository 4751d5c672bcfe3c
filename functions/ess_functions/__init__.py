"""Logic behind the Cloud Run functions and their command-line twins, one folder per stage:
ingest (the ingest function), export (the export function, `ess export`), archive (the raw
archive, `ess redecode`); objstore (Cloud Storage or a directory) serves them all."""
