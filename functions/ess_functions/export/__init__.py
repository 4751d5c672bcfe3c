"""The daily export, by stage: request (what a request may ask), dates (the first day each site
accepts), sql (the COPY statements), encode (CSV, CSV.gz, Parquet streams), manifest (layout,
per-day manifests), run (site-days into the store), http (the function), cli (`ess export`),
migrate (`ess export-migrate`). See docs/export.md."""

from .request import plan_jobs
from .run import export_jobs, export_site_day

__all__ = ["export_jobs", "export_site_day", "plan_jobs"]
