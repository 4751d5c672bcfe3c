"""Fixtures of the infra tests: the merged root module, and log lines captured from real runs of
the components."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pytest
from ess_local.procs import free_port
from real_lines import (
    as_entry,
    collector_lines,
    export_app,
    export_env,
    export_lines,
    ingest_lines,
    kind_of,
    ledger_day,
    log_level_quiet,
    sites_yaml,
)
from tfmodule import load_root
from upkeep_lines import upkeep_lines

RUN = {"type": "cloud_run_revision", "labels": {"service_name": "ess-ingest-main"}}
EXPORT = {"type": "cloud_run_revision", "labels": {"service_name": "ess-export"}}
VM = {"type": "gce_instance", "labels": {"instance_id": "1"}}


@pytest.fixture(scope="module")
def root() -> dict:
    """Merged view of the root module: resources, data, variables, locals, outputs."""
    return load_root()


@dataclass
class RealLines:
    """Captured entries by kind (as Cloud Logging stores them), and what the stored line of
    the ingested message must report."""

    kinds: dict[str, list[dict]] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)
    old_days: dict[str, date] = field(default_factory=dict)    # upkeep_lines.old_days

    def add(self, lines: list[dict], resource: dict) -> None:
        for line in lines:
            self.kinds.setdefault(kind_of(line.get("message", "")), []).append(
                as_entry(line, resource))


@pytest.fixture(scope="session")
def real_lines(tmp_path_factory, pg_cluster, gcs_emulator) -> RealLines:
    """Ingest, collector and export lines from real runs (see real_lines.py)."""
    log_level_quiet()
    tmp = tmp_path_factory.mktemp("real-lines")
    sites = sites_yaml(tmp / "sites.yaml")
    dsn = pg_cluster.create_database("real_lines", timescale=True)
    out = RealLines()
    lines, out.stored = ingest_lines(dsn, sites, tmp)
    out.add(lines, RUN)
    ledger_day(dsn)
    gcs_emulator.create_bucket("ess-real-lines")
    app, env = export_app(), export_env(dsn, sites, gcs_emulator.env(), "ess-real-lines")
    out.add(export_lines(app, env), RUN)
    lines, out.old_days = upkeep_lines(app, dsn, env)
    out.add(lines, EXPORT)
    dead = free_port()       # no Pub/Sub emulator listens there
    (tmp / "collector").mkdir()
    out.add(collector_lines(tmp / "collector", dead), VM)
    yield out
    pg_cluster.drop_database("real_lines")
