"""Log-based metrics, alert intent and the Ops Agent config, evaluated against real log lines.

The lines come from real runs of the components (tests/infra/real_lines.py, the `real_lines`
fixture): the Ingestor storing, re-storing, failing to store (database down) and quarantining;
`ess collect` with a failing block, a closed port and Pub/Sub unreachable; the export function
running and failing, and its rollup and retention tasks (upkeep_lines.py). They are wrapped
the way Cloud Logging stores them: JSON fields under jsonPayload, `severity` lifted to the
entry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import hcl2
import pytest
import yaml
from logquery import extract, matches

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
# The kinds of line the issue names, each of which a real run must have produced.
REQUIRED = ("stored", "store_failure", "quarantine", "poll_failed_block", "connect_failure",
            "publish_failure", "publish_stalled", "export_file", "export_failure",
            "status_incomplete", "status_lost", "status", "frozen", "thawed", "event_fault",
            "event_warning", "spool_dropped", "spool_corrupt", "rollup_done", "rollup_busy",
            "rollup_failure", "retention_failure", "retention_dropped", "retention_kept",
            "retention_unexported", "retention_pruned")
STATUS = ("status_incomplete", "status_lost", "status")
FIELD = object()     # the extracted value must equal the line's own field (see VALUE_FIELD)

# metric -> the kinds of line it must count (exactly), and the value extracted from each:
# None (a counter), a number the test input fixes, or FIELD.
EXPECTED = {
    "ess_store_batches": {"stored": None, "stored_again": None},
    "ess_frames_ingested": {"stored": "frames", "stored_again": "frames"},
    "ess_rows_written": {"stored": FIELD, "stored_again": FIELD},
    "ess_duplicates": {"stored_again": "rows"},
    "ess_decode_errors": {"quarantine": None},
    "ess_out_of_range": {"out_of_range": "out_of_range"},
    "ess_poll_errors": {"poll_failed_block": None, "connect_failure": None,
                        "publish_failure": None, "publish_stalled": None},
    "ess_poll_to_row_lag": {"stored": FIELD, "stored_again": FIELD},
    "ess_export_rows": {"export_file": FIELD},
    "ess_export_runs": {"export_file": None, "export_manifest": None},
    "ess_day_completeness": dict.fromkeys(STATUS, FIELD),
    "ess_day_lost_frames": dict.fromkeys(STATUS, FIELD),
    "ess_days_with_loss": {"status_lost": None},
    "ess_days_incomplete": {"status_incomplete": None},
    "ess_frozen_banks": {"frozen": None},
    "ess_spool_errors": {"spool_dropped": None, "spool_corrupt": None},
    "ess_events_fault": {"event_fault": None},
    "ess_events_warning": {"event_warning": None},
    "ess_event_delay": {"event_fault": FIELD, "event_warning": FIELD},
    "ess_rollup_runs": {"rollup_done": None},
    "ess_rollup_incomplete": {"rollup_busy": None, "rollup_failure": None, "rollup_held": None},
    "ess_retention_dropped": {"retention_dropped": None},
    "ess_retention_kept": {"retention_kept": None, "retention_unexported": None},
    "ess_retention_unexported": {"retention_unexported": None},
}
VALUE_FIELD = {"ess_poll_to_row_lag": "lag_s", "ess_export_rows": "rows",
               "ess_rows_written": "inserted",
               "ess_day_completeness": "completeness_pct", "ess_day_lost_frames": "lost",
               "ess_event_delay": "delay_s"}


def _norm(v):
    if isinstance(v, dict):
        return {str(k).strip('"'): _norm(x) for k, x in v.items() if not str(k).startswith("__")}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v[1:-1] if isinstance(v, str) and len(v) > 1 and v[:1] == '"' == v[-1:] else v


def _defaults() -> dict[str, object]:
    with (INFRA / "variables.tf").open() as f:
        d = _norm(hcl2.load(f))
    return {k: v.get("default") for b in d["variable"] for k, v in b.items()}


def _hcl_string(s: str) -> str:
    """A filter as Terraform will send it (HCL escapes undone, variables at their defaults)."""
    defaults = _defaults()
    return re.sub(r"\$\{var\.([a-z_]+)\}", lambda m: str(defaults[m.group(1)]),
                  s.replace('\\"', '"'))


@pytest.fixture(scope="module")
def kinds(real_lines) -> dict[str, list[dict]]:
    """Every captured entry, by kind."""
    missing = [k for k in REQUIRED if not real_lines.kinds.get(k)]
    assert not missing, f"the real runs logged no {missing}"
    return real_lines.kinds


@pytest.fixture(scope="module")
def entries(kinds) -> dict[str, dict]:
    """The first captured entry of each kind."""
    return {k: v[0] for k, v in kinds.items()}


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
def test_metric_counts_exactly_its_lines(name, metrics, kinds, real_lines):
    m = metrics[name]
    f = _hcl_string(m["filter"])
    for kind, lines in kinds.items():
        hits = [matches(f, e) for e in lines]
        want = kind in EXPECTED[name]
        assert hits == [want] * len(lines), (f"{name} ({m['description']}) on {kind}: "
                                             f"{[e['jsonPayload']['message'] for e in lines]}")
    for kind, want in EXPECTED[name].items():
        if want is None:
            assert m["value"] is None, name
            continue
        for e in kinds[kind]:
            expected = (e["jsonPayload"][VALUE_FIELD[name]] if want is FIELD
                        else real_lines.stored[want])
            assert m["value"] and extract(m["value"], e) == expected, (name, kind)


def test_rows_written_counts_new_rows_only(metrics, kinds, real_lines):
    value = metrics["ess_rows_written"]["value"]
    assert [extract(value, e) for e in kinds["stored"]] == [real_lines.stored["rows"]]
    assert [extract(value, e) for e in kinds["stored_again"]] == [0], "a redelivery adds no rows"


def test_export_rows_add_up_to_the_rows_stored(metrics, kinds, real_lines):
    """The tables' files hold the rows stored; the events files the episodes."""
    value = metrics["ess_export_rows"]["value"]
    site_a = [e for e in kinds["export_file"] if e["jsonPayload"]["site"] == "site-a"]
    tables = [e for e in site_a if e["jsonPayload"]["type"] != "events"]
    events = [e for e in site_a if e["jsonPayload"]["type"] == "events"]
    assert sum(extract(value, e) for e in tables) == real_lines.stored["rows"]
    assert [extract(value, e) for e in events] == [real_lines.stored["episodes"]]


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
    # per site and sink: a replica still storing must not hide the main database's outage
    assert cond["aggregations"][0]["group_by_fields"] == ["metric.label.site",
                                                          "metric.label.service"]
    assert cond["duration"] == "${var.site_silence_minutes * 60}s"
    assert _defaults()["site_silence_minutes"] == 5
    outage = [entries["store_failure"], entries["quarantine"]]
    f = _hcl_string(metrics["ess_store_batches"]["filter"])
    assert not any(matches(f, e) for e in outage), "retries would keep the alert quiet"
    assert matches(f, entries["stored"]), "normal operation must keep the series present"


def test_status_lines_report_the_ledger(kinds, real_lines):
    """One status line per configured bank and day; the gap's bank reports lost=1."""
    from real_lines import LEDGER_SITE

    lines = [e["jsonPayload"] for k in STATUS for e in kinds[k]]
    assert sorted((x["site"], x["bank"]) for x in lines) == [("site-a", 1), (LEDGER_SITE, 1),
                                                            (LEDGER_SITE, 2)]
    lost = kinds["status_lost"][0]["jsonPayload"]
    assert (lost["site"], lost["bank"], lost["lost"], lost["stored"]) == (LEDGER_SITE, 1, 1,
                                                                          86399)
    assert kinds["status"][0]["jsonPayload"]["completeness_pct"] == 100.0
    assert kinds["status_incomplete"][0]["jsonPayload"]["stored"] == real_lines.stored["frames"]


def _monitoring_local(name: str) -> dict:
    """A local value of infra/monitoring.tf."""
    with (INFRA / "monitoring.tf").open() as f:
        d = _norm(hcl2.load(f))
    return next(b[name] for b in d["locals"] if name in b)


def test_status_alerts_count_their_metric_per_site(policies, metrics):
    """Lost frames, an incomplete day and a frozen bank each alert on > 0 of its counter."""
    p = policies["status"]
    assert p["for_each"] == "${local.status_alerts}"
    alerts = _monitoring_local("status_alerts")
    assert {a["metric"] for a in alerts.values()} == {"ess_days_with_loss",
                                                      "ess_days_incomplete", "ess_frozen_banks",
                                                      "ess_spool_errors",
                                                      "ess_retention_unexported"}
    for a in alerts.values():
        assert metrics[a["metric"]]["value"] is None, "a counter of lines"
    cond = p["conditions"][0]["condition_threshold"][0]
    assert "google_logging_metric.ess[each.value.metric].name" in cond["filter"]
    assert (cond["comparison"], cond["threshold_value"]) == ("COMPARISON_GT", 0)
    assert cond["aggregations"][0]["group_by_fields"] == ["metric.label.site"]


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
    assert parsed["jsonPayload"] == entries["poll_failed_block"]["jsonPayload"]
    assert parsed["jsonPayload"]["stage"] == "poll" and parsed["jsonPayload"]["failed"] >= 1


def test_event_lines_name_the_episode(kinds):
    """Each raised episode's line: site, bank, rack (null at bank level), alarm, its severity
    (alarm_severity; the entry is a WARNING: not counted as an error of the pipeline)."""
    for kind in ("event_fault", "event_warning"):
        for e in kinds[kind]:
            p = e["jsonPayload"]
            assert e["severity"] == "WARNING" and p["stage"] == "event"
            assert p["alarm_severity"] == kind.removeprefix("event_")
            assert {"site", "bank", "rack", "alarm", "raised", "since", "value",
                    "delay_s"} <= set(p), p
    racks = {e["jsonPayload"]["rack"] for k in ("event_fault", "event_warning") for e in kinds[k]}
    assert None in racks and racks - {None}, "bank-level and rack alarms"


def test_one_event_line_per_episode(kinds, real_lines):
    """The ingested message raised episodes: one line each (its redelivery logged none)."""
    lines = kinds["event_fault"] + kinds["event_warning"]
    assert len(lines) == real_lines.stored["episodes"] > 0
    assert {e["jsonPayload"]["message_id"] for e in lines} == {"m-good"}
    assert len({(e["jsonPayload"]["alarm"], e["jsonPayload"]["rack"]) for e in lines}) \
        == len(lines)


def test_event_alerts_fire_per_site_and_severity(policies, metrics):
    """One policy per severity on its counter of event lines, grouped by site."""
    p = policies["events"]
    assert p["for_each"] == "${local.event_alerts}"
    alerts = _monitoring_local("event_alerts")
    assert {k: (a["metric"], a["severity"]) for k, a in alerts.items()} == {
        "fault": ("ess_events_fault", "CRITICAL"), "warning": ("ess_events_warning", "WARNING")}
    for a in alerts.values():
        assert metrics[a["metric"]]["value"] is None, "a counter of lines"
    cond = p["conditions"][0]["condition_threshold"][0]
    assert "google_logging_metric.ess[each.value.metric].name" in cond["filter"]
    assert (cond["comparison"], cond["threshold_value"], cond["duration"]) == (
        "COMPARISON_GT", 0, "0s")
    assert cond["aggregations"][0]["group_by_fields"] == ["metric.label.site"]
