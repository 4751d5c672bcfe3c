"""Log-based metrics, alert intent and the Ops Agent config, evaluated against real log lines.

The lines come from the real `ess.logs.setup_logging` handler and `ess.logs.event`, called with
the fields each component's event() call passes (collector/ess_collector/{service,modbus,
sender}.py, functions/ess_functions/{ingest,export,export_http}.py). They are wrapped the way
Cloud Logging stores them: JSON fields under jsonPayload, `severity` lifted to the entry.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import hcl2
import pytest
import yaml
from ess.logs import event, setup_logging
from logquery import extract, matches

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
RUN = {"type": "cloud_run_revision", "labels": {"service_name": "ess-ingest-main"}}
VM = {"type": "gce_instance", "labels": {"instance_id": "1"}}
IDS = {"message_id": "m1", "site": "site-a"}

# name -> (resource, message, stage, level, fields)
LINES = {
    "stored": (RUN, "stored 40/40 rows of 2 frames", "store", logging.INFO,
               dict(frames=2, bytes=900, rows=40, inserted=38, duplicates=2,
                    latency_ms={"p50": 80.0, "max": 90.0}, lag_s=0.09, **IDS)),
    "store_failure": (RUN, "store failed (transient): connection refused", "store",
                      logging.WARNING, dict(frames=2, transient=True,
                                            error="InterfaceError: connection refused", **IDS)),
    "out_of_range": (RUN, "out-of-range values: soc=120", "preprocess", logging.WARNING,
                     dict(frames=2, out_of_range=3, registers=[{"name": "soc", "count": 3}],
                          **IDS)),
    "quarantine": (RUN, "quarantined message m1: bad_crc: x", "preprocess", logging.ERROR,
                   dict(reason="bad_crc", error="x", quarantine="gs://q/m1", bytes=10, **IDS)),
    "poll_failed_block": (VM, "site-a/bms1: cells timeout", "poll", logging.WARNING,
                          dict(site="site-a", device="site-a/bms1", failed=1, latency_ms=12.5)),
    "poll_recovered": (VM, "site-a/bms1: all blocks ok again", "poll", logging.INFO,
                       dict(site="site-a", device="site-a/bms1", failed=0, latency_ms=3.1)),
    "poll_summary": (VM, "site-a/bms1: poll summary", "poll", logging.INFO,
                     dict(site="site-a", device="site-a/bms1", polls=60, missed_ticks=0,
                          failed_blocks=1, jitter_ms_p50=1.0, jitter_ms_p99=3.0,
                          poll_ms_p50=3.0, poll_ms_p99=9.0)),
    "connect_failure": (VM, "site-a/bms1: cannot connect (refused); retry in 1.0 s", "poll",
                        logging.WARNING, dict(site="site-a", device="site-a/bms1",
                                              error="refused", backoff_s=1.0)),
    "publish_failure": (VM, "publish failed for site site-a", "publish", logging.ERROR,
                        dict(site="site-a", error="ServiceUnavailable()")),
    "publish_summary": (VM, "site-a: publish summary", "publish", logging.INFO,
                        dict(site="site-a", frames=60, messages=6, failures=0, replayed=0,
                             queued=0, latency_ms_p50=20.0, latency_ms_p99=40.0)),
    "export_file": (RUN, "export site-a/bms/2024-01-01.csv: written", "accumulate", logging.INFO,
                    dict(site="site-a", table="bms", day="2024-01-01", status="written",
                         rows=1440, bytes=9000, sha256="ab", ms=120, object="k")),
    "export_manifest": (RUN, "manifest 2024-01-01: written", "accumulate", logging.INFO,
                        dict(date="2024-01-01", files=3, written=True)),
    "export_failure": (RUN, "export failed: boom", "accumulate", logging.ERROR,
                       dict(error="OperationalError('boom')")),
    "export_conflict": (RUN, "export k: replaced by another run", "accumulate", logging.WARNING,
                        dict(object="k", error="replaced")),
}

# metric -> the lines it must count (exactly), and the value extracted from each.
EXPECTED = {
    "ess_store_batches": {"stored": None},
    "ess_frames_ingested": {"stored": 2},
    "ess_rows_written": {"stored": 40},
    "ess_duplicates": {"stored": 2},
    "ess_decode_errors": {"quarantine": None},
    "ess_out_of_range": {"out_of_range": 3},
    "ess_poll_errors": {"poll_failed_block": None, "connect_failure": None,
                        "publish_failure": None},
    "ess_poll_to_row_lag": {"stored": 0.09},
    "ess_export_rows": {"export_file": 1440},
    "ess_export_runs": {"export_file": None, "export_manifest": None},
}


def _norm(v):
    if isinstance(v, dict):
        return {str(k).strip('"'): _norm(x) for k, x in v.items() if not str(k).startswith("__")}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v.strip('"') if isinstance(v, str) and v[:1] == '"' == v[-1:] else v


def _hcl_string(s: str) -> str:
    """A filter as Terraform will send it (HCL escapes undone)."""
    return s.replace('\\"', '"')


@pytest.fixture(scope="module")
def entries() -> dict[str, dict]:
    """Each named line, emitted by the real handler, as Cloud Logging stores it."""
    stream = io.StringIO()
    setup_logging("test", stream=stream, level="INFO")
    log = logging.getLogger("ess.test")
    out = {}
    try:
        for name, (resource, message, stage, level, fields) in LINES.items():
            stream.seek(0)
            stream.truncate()
            event(log, message, stage=stage, level=level, **fields)
            payload = json.loads(stream.getvalue().strip().splitlines()[-1])
            severity = payload.pop("severity")
            out[name] = {"jsonPayload": payload, "severity": severity, "resource": resource}
    finally:
        setup_logging("test")
    return out


@pytest.fixture(scope="module")
def metrics() -> dict[str, dict]:
    with (INFRA / "monitoring.tf").open() as f:
        d = _norm(hcl2.load(f))
    return next(b["log_metrics"] for b in d["locals"] if "log_metrics" in b)


@pytest.fixture(scope="module")
def policies() -> dict[str, dict]:
    with (INFRA / "monitoring.tf").open() as f:
        d = _norm(hcl2.load(f))
    return {k: v for b in d["resource"]
            for k, v in b.get("google_monitoring_alert_policy", {}).items()}


def test_every_metric_has_an_expectation(metrics):
    assert set(metrics) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metric_counts_exactly_its_lines(name, metrics, entries):
    m = metrics[name]
    counted = {k for k, e in entries.items() if matches(_hcl_string(m["filter"]), e)}
    assert counted == set(EXPECTED[name]), f"{name}: {m['description']}"
    for line, want in EXPECTED[name].items():
        if want is not None:
            assert m["value"] and extract(m["value"], entries[line]) == want, (name, line)
        else:
            assert m["value"] is None, name


def test_label_extractors_find_the_site(entries):
    with (INFRA / "monitoring.tf").open() as f:
        d = _norm(hcl2.load(f))
    labels = next(b["log_metric_labels"] for b in d["locals"] if "log_metric_labels" in b)
    assert extract(labels["site"]["extractor"], entries["stored"]) == "site-a"
    assert extract(labels["service"]["extractor"], entries["stored"]) == "ess-ingest-main"


def test_site_silent_fires_during_a_database_outage(policies, metrics, entries):
    """During an outage ingest logs only store failures: the per-site series must go absent."""
    cond = policies["site_silent"]["conditions"][0]["condition_absent"][0]
    assert "ess_store_batches" in cond["filter"]
    assert cond["aggregations"][0]["group_by_fields"] == ["metric.label.site"]
    outage = [entries["store_failure"], entries["quarantine"]]
    f = _hcl_string(metrics["ess_store_batches"]["filter"])
    assert not any(matches(f, e) for e in outage), "retries would keep the alert quiet"
    assert matches(f, entries["stored"]), "normal operation must keep the series present"


def test_export_missed_waits_after_first_deploy(policies):
    cond = policies["export_missed"]["conditions"][0]["condition_prometheus_query_language"][0]
    assert cond["disable_metric_validation"] is True
    q = cond["query"]
    assert "absent_over_time" in q and "[26h]" in q
    assert re.search(r"vector\(time\(\)\) > \$\{time_static\.[a-z_]+\.unix \+ 93600\}", q), q


def test_scheduler_failure_filter(policies):
    f = _hcl_string(policies["export_job_failed"]["conditions"][0]["condition_matched_log"][0]
                    ["filter"])
    f = f.replace("${google_cloud_scheduler_job.export.name}", "ess-daily-export")
    job = {"type": "cloud_scheduler_job", "labels": {"job_id": "ess-daily-export"}}
    assert matches(f, {"resource": job, "severity": "ERROR", "jsonPayload": {}})
    assert not matches(f, {"resource": job, "severity": "INFO", "jsonPayload": {}})


# --- Ops Agent on the collector VM ----------------------------------------------------------

# Field names the systemd_journald receiver keeps (journald's own, systemd.journal-fields(7)):
# https://cloud.google.com/logging/docs/agent/ops-agent/configuration#logging-receivers
JOURNALD_FIELDS = {"MESSAGE", "_SYSTEMD_UNIT", "PRIORITY", "SYSLOG_IDENTIFIER", "_PID"}
# Processor types and their options: same page, "Logging processors".
PROCESSORS = {"parse_json": {"type", "field", "time_key", "time_format"},
              "exclude_logs": {"type", "match_any"}}


def _ops_config() -> dict:
    tpl = (INFRA / "templates" / "collector-startup.sh.tftpl").read_text()
    body = re.search(r"<<'OPS'\n(.*?)\nOPS\n", tpl, re.S)
    assert body, "the template writes no Ops Agent config"
    assert "${" not in body.group(1), "the config must not depend on template variables"
    return yaml.safe_load(body.group(1))


def _unit_name() -> str:
    vm = (INFRA / "collector_vm.tf").read_text()
    unit = re.search(r'file\("\$\{path\.module\}/\.\./collector/systemd/([a-z-]+\.service)"\)', vm)
    assert unit
    return unit.group(1)


def _journald(unit: str, message: str) -> dict:
    return {"jsonPayload": {"MESSAGE": message, "_SYSTEMD_UNIT": unit, "PRIORITY": "6"}}


def test_ops_agent_parses_the_collector_unit_only(entries):
    cfg = _ops_config()["logging"]
    receivers = cfg["receivers"]
    pipe = cfg["service"]["pipelines"]["ess"]
    assert [receivers[r]["type"] for r in pipe["receivers"]] == ["systemd_journald"]
    assert cfg["service"]["pipelines"]["default_pipeline"]["receivers"] == []
    procs = [cfg["processors"][p] for p in pipe["processors"]]
    for p in procs:
        assert set(p) <= PROCESSORS[p["type"]], p
    parse = [p for p in procs if p["type"] == "parse_json"]
    assert parse and parse[0]["field"] in JOURNALD_FIELDS and parse[0]["field"] == "MESSAGE"
    excludes = [f for p in procs if p["type"] == "exclude_logs" for f in p["match_any"]]
    for f in excludes:
        for field in re.findall(r"jsonPayload\.([A-Za-z_]+)", f):
            assert field in JOURNALD_FIELDS, field
    line = json.dumps(entries["poll_failed_block"]["jsonPayload"])
    unit = _unit_name()
    kept = _journald(unit, line)
    assert not any(matches(f, kept) for f in excludes), "collector lines must be kept"
    others = (_journald("sshd.service", "Accepted publickey"), {"jsonPayload": {"MESSAGE": "k"}})
    for other in others:
        assert any(matches(f, other) for f in excludes), f"not dropped: {other}"
    # after parse_json on MESSAGE the collector's fields are what the metrics read
    parsed = {"jsonPayload": json.loads(kept["jsonPayload"][parse[0]["field"]])}
    assert parsed["jsonPayload"]["stage"] == "poll" and parsed["jsonPayload"]["failed"] == 1
