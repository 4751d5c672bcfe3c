"""Alerts on the export function's scheduled tasks (infra/alerts_upkeep.tf, monitoring.tf), from
real rollup and retention runs (upkeep_lines.py): rollups that stop being brought up to date,
a failed Cloud Scheduler attempt of any job, and raw days retention keeps for a reason only an
operator can fix. test_logmetrics checks that each metric counts exactly its kinds of line."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from logquery import matches
from tfmodule import INFRA, block, text
from upkeep_lines import RAW_DAYS

SCHEDULER = {"type": "cloud_scheduler_job", "labels": {"job_id": None}}


def _filter(root, metric: str) -> str:
    return root["locals"]["log_metrics"][metric]["filter"].replace('\\"', '"')


def test_rollup_lines_say_whether_the_rollups_are_current(real_lines):
    """A run that brought them up to date, one that found another run holding the lock, and a
    failure (database down) under the task's own stage, never as an export failure."""
    kinds = real_lines.kinds
    (done,) = [e["jsonPayload"] for e in kinds["rollup_done"]]
    assert done["status"] == "done" and done["complete"] is True and done["minutes"] > 0
    (busy,) = [e["jsonPayload"] for e in kinds["rollup_busy"]]
    assert busy["status"] == "busy" and busy["minutes"] == 0
    for kind, stage in (("rollup_failure", "rollup"), ("retention_failure", "retention")):
        (e,) = kinds[kind]
        assert e["severity"] == "ERROR" and e["jsonPayload"]["stage"] == stage
        assert e["jsonPayload"]["error"] and e["jsonPayload"]["error_id"]
    assert len(kinds["export_failure"]) == 1, "only the export's own failure says export"


def test_retention_lines_tell_a_persistent_refusal_from_a_first_one(real_lines):
    """Per old day: DROP_DAY kept while its rollups were behind, then dropped; STUCK_DAY kept as
    not exported on both runs, days past due; FRESH kept as not exported on the day it fell due."""
    lines = [e["jsonPayload"] for k in ("retention_dropped", "retention_kept",
                                        "retention_unexported") for e in real_lines.kinds[k]]
    by_day: dict[str, list[dict]] = {}
    for p in lines:
        by_day.setdefault(p["start"][:10], []).append(p)
    days = real_lines.old_days
    assert set(by_day) == {str(d) for d in days.values()}
    today = datetime.now(UTC).date()
    for name, day in days.items():
        due = (today - day - timedelta(days=RAW_DAYS + 1)).days
        assert [p["past_due_days"] for p in by_day[str(day)]] == [due, due], name
    assert sorted((p["dropped"], p["reason"] or "") for p in by_day[str(days["drop"])]) == [
        (False, "rollups behind"), (True, "")]
    for name in ("stuck", "fresh"):
        for p in by_day[str(days[name])]:
            assert (p["dropped"], p["reason"]) == (False, "not exported")
            assert p["mismatch"] == [{"site": "site-b", "day": str(days[name]),
                                      "table": "frames", "present": 3, "dropped": 0,
                                      "exported": None}]
    assert [p["past_due_days"] for p in by_day[str(days["fresh"])]] == [0, 0]
    assert min(p["past_due_days"] for p in by_day[str(days["stuck"])]) >= 1


def test_retention_alert_fires_on_a_persistent_refusal_only(root, real_lines):
    """The same reason, `not exported`: STUCK_DAY's lines count, FRESH's first refusal and the
    other reasons do not; the policy explains the choice."""
    f = _filter(root, "ess_retention_unexported")
    kept = real_lines.kinds["retention_kept"] + real_lines.kinds["retention_unexported"]
    counted = {e["jsonPayload"]["start"][:10] for e in kept if matches(f, e)}
    assert counted == {str(real_lines.old_days["stuck"])}
    assert {e["jsonPayload"]["reason"] for e in kept if not matches(f, e)} == {
        "not exported", "rollups behind"}
    alert = root["locals"]["status_alerts"]["retention_unexported"]
    assert alert["metric"] == "ess_retention_unexported"
    doc = " ".join(alert["doc"].split())
    for why in ("`busy`", "`rollups behind`", "a first refusal", "`no slices`", "mismatch",
                "ess export --date"):
        assert why in doc, why


def _missed(root) -> tuple[dict, dict]:
    return (root["resource"]["google_monitoring_alert_policy"]["task_missed"],
            root["locals"]["task_missed"])


def test_task_missed_alerts_wait_after_first_deploy(root):
    """The export (26 h) and the rollups (retention.rollup_stale_minutes): absent for the
    window, and at least the window since the alert was deployed."""
    policy, tasks = _missed(root)
    assert policy["for_each"] == "${local.task_missed}"
    assert {k: (t["metric"], t["window_s"]) for k, t in tasks.items()} == {
        "export": ("ess_export_runs", 93600),
        "rollup": ("ess_rollup_runs", "${var.retention.rollup_stale_minutes * 60}")}
    cond = block(block(policy, "conditions"), "condition_prometheus_query_language")
    assert cond["disable_metric_validation"] is True
    q = cond["query"]
    assert re.search(r"^absent_over_time\(logging_googleapis_com:user_\$\{google_logging_metric"
                     r"\.ess\[each\.value\.metric\]\.name\}\[\$\{each\.value\.window_s\}s\]\)", q)
    assert re.search(r"vector\(time\(\)\) > \$\{time_static\.task_missed_since\[each\.key\]\.unix"
                     r" \+ each\.value\.window_s\}\)$", q), q
    since = root["resource"]["time_static"]["task_missed_since"]
    assert since["for_each"] == "${local.task_missed}"
    assert "rollup_stale_minutes = optional(number, 60)" in root["variable"]["retention"]["type"]


def test_renamed_alerts_keep_their_state():
    """export_missed, export_job_failed and the deploy time moved into the for_each resources
    (an existing deployment keeps its policies and its 26 h grace)."""
    tf = (INFRA / "alerts_upkeep.tf").read_text()
    moves = set(re.findall(r"moved \{\s*from = (\S+)\s*to\s*= (\S+)\s*\}", tf))
    assert moves == {
        ("time_static.monitoring_deployed", 'time_static.task_missed_since["export"]'),
        ("google_monitoring_alert_policy.export_missed",
         'google_monitoring_alert_policy.task_missed["export"]'),
        ("google_monitoring_alert_policy.export_job_failed",
         'google_monitoring_alert_policy.scheduler_failed["export"]')}


def test_every_scheduler_job_alerts_on_a_failed_attempt(root):
    """One policy per Cloud Scheduler job (the export and each upkeep task), on its own job's
    ERROR entries, with what to do for that task."""
    jobs = root["resource"]["google_cloud_scheduler_job"]
    assert set(jobs) == {"export", "upkeep"}
    keys = {"export", *jobs["upkeep"]["for_each"]}
    assert keys == {"export", "rollup", "retention"}
    assert re.sub(r"\s", "", text(root["locals"]["scheduler_jobs"])) == (
        "${merge({export=google_cloud_scheduler_job.export},google_cloud_scheduler_job.upkeep)}")
    assert set(root["locals"]["scheduler_failed_doc"]) == keys
    policy = root["resource"]["google_monitoring_alert_policy"]["scheduler_failed"]
    assert policy["for_each"] == "${local.scheduler_jobs}"
    f = block(block(policy, "conditions"), "condition_matched_log")["filter"]
    for key in keys:
        mine = f.replace('\\"', '"').replace("${each.value.name}", f"ess-{key}")
        for job in keys:
            entry = {"resource": {**SCHEDULER, "labels": {"job_id": f"ess-{job}"}},
                     "jsonPayload": {"status": "INTERNAL"}}
            assert matches(mine, {**entry, "severity": "ERROR"}) == (job == key), (key, job)
            assert not matches(mine, {**entry, "severity": "INFO"})


def test_dashboard_shows_rollups_and_retention():
    dash = (INFRA / "dashboards" / "ess.json").read_text()
    for metric in ("ess_rollup_runs", "ess_rollup_incomplete", "ess_retention_dropped",
                   "ess_retention_kept", "ess_retention_unexported"):
        assert f"logging_googleapis_com:user_{metric}[" in dash, metric
