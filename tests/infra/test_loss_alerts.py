"""What can be lost silently gets an alert, and outages longer than the retry budget have a
replay path (issue 21, items 1 and 2): every subscription's oldest-message age, the collector
spool's losses (checked against real log lines), and the dead-letter routes of every sink."""

from __future__ import annotations

import re

from logquery import matches
from tfmodule import ROOT, block, text

HOUR = 3600.0


def _seconds(duration: str) -> float:
    return float(duration.rstrip("s"))


def retry_budget(attempts: int, min_backoff: float, max_backoff: float) -> float:
    """Seconds from the first delivery to the last: Pub/Sub's back-off doubles from the minimum
    up to the maximum between attempts."""
    waits, b = [], min_backoff
    for _ in range(attempts - 1):
        waits.append(min(b, max_backoff))
        b *= 2
    return sum(waits)


def test_the_retry_budget_covers_hours_not_minutes(root):
    v = root["variable"]
    attempts = v["max_delivery_attempts"]["default"]
    budget = retry_budget(attempts, _seconds(v["push_min_backoff"]["default"]),
                          _seconds(v["push_max_backoff"]["default"]))
    assert attempts == 100 and 15 * HOUR < budget < 17 * HOUR, budget / HOUR
    for doc in ("README.md", "docs/deploy.md"):
        body = (ROOT / doc).read_text()
        assert "about 16 hours" in body, doc
        assert "ess replay-dead-letters" in body and "dead_letter_replay_command" in body, doc
        assert "ess redecode" in body, doc


def _subscriptions(root) -> dict[str, dict]:
    return root["resource"]["google_pubsub_subscription"]


def test_every_subscription_alerts_on_its_oldest_message(root):
    alerts = text(root["locals"]["backlog_alerts"])
    named = set(re.findall(r"google_pubsub_subscription\.([a-z_]+)\b", alerts))
    assert named == set(_subscriptions(root)), "a subscription without a backlog-age alert"
    for name, sub in _subscriptions(root).items():
        if "for_each" in sub:       # one alert per sink
            assert re.search(rf"for k, s in google_pubsub_subscription\.{name} :", alerts), name
    policy = root["resource"]["google_monitoring_alert_policy"]["backlog_age"]
    assert policy["for_each"] == "${local.backlog_alerts}"
    cond = block(block(policy, "conditions"), "condition_threshold")
    assert "pubsub.googleapis.com/subscription/oldest_unacked_message_age" in cond["filter"]
    assert 'resource.label.subscription_id=\\"${each.value.subscription}\\"' in cond["filter"] \
        or 'resource.label.subscription_id="${each.value.subscription}"' in cond["filter"]
    assert (cond["comparison"], cond["threshold_value"]) == ("COMPARISON_GT",
                                                            "${each.value.max_age_s}")
    assert policy["notification_channels"] == "${var.notification_channels}"


def test_backlog_thresholds_fit_the_retry_budget_and_retention(root):
    v = root["variable"]
    ages = dict(re.findall(r"(\w+) = optional\(number, (\d+)\)",
                           v["backlog_alert_age_seconds"]["type"]))
    budget = retry_budget(v["max_delivery_attempts"]["default"],
                          _seconds(v["push_min_backoff"]["default"]),
                          _seconds(v["push_max_backoff"]["default"]))
    assert set(ages) == {"ingest", "raw_archive", "dead_letter"}
    assert int(ages["ingest"]) < budget / 10, "a sink's outage must alert long before dead letters"
    archive_flush = _seconds(v["raw_archive_max_duration"]["default"])
    assert archive_flush < int(ages["raw_archive"]) <= 2 * HOUR
    retention = _seconds(_subscriptions(root)["dead_letter"]["message_retention_duration"])
    assert int(ages["dead_letter"]) <= retention / 3, "time to replay before the letters expire"


def test_spool_losses_alert_from_real_collector_lines(root, real_lines):
    """`ess collect` with a tiny spool and Pub/Sub down: its size bound drops frames, a corrupt
    row is set aside; each ERROR line counts in ess_spool_errors, which the alert watches."""
    metric = root["locals"]["log_metrics"]["ess_spool_errors"]
    f = metric["filter"].replace('\\"', '"')
    dropped = real_lines.kinds.get("spool_dropped", [])
    corrupt = real_lines.kinds.get("spool_corrupt", [])
    assert dropped and corrupt, "the real run logged no spool loss"
    for e in dropped:
        p = e["jsonPayload"]
        assert e["severity"] == "ERROR" and p["frames"] > 0 and p["reason"] == "spool_full"
        assert re.fullmatch(r"(site-a/bank\d+ \d+(\.\.\d+)?(, )?)+", p["seqs"]), p["seqs"]
        assert f"spool dropped {p['frames']} frames" in p["message"]
        assert matches(f, e)
    assert all(matches(f, e) for e in corrupt)
    assert not any(matches(f, e) for k, lines in real_lines.kinds.items()
                   if k not in ("spool_dropped", "spool_corrupt") for e in lines)
    # alerted by the per-site counter policy of monitoring.tf (test_logmetrics checks its shape)
    assert root["locals"]["status_alerts"]["spool_lost"]["metric"] == "ess_spool_errors"
    assert root["resource"]["google_monitoring_alert_policy"]["status"]["for_each"] == \
        "${local.status_alerts}"


def test_dead_letters_route_back_to_the_sink_that_failed_them(root):
    """Each ingest and replay subscription routes to its own sink's replay topic, whose push
    subscription delivers to that sink's function and dead-letters to the same topic."""
    routes = text(root["locals"]["dead_letter_routes"])
    assert ("for k, s in google_pubsub_subscription.ingest : s.name => "
            "google_pubsub_topic.replay[local.push_subscriptions[k].sink].id") in routes, routes
    push = _subscriptions(root)["ingest"]      # frames and replay subscriptions (test_wiring)
    assert push["for_each"] == "${local.push_subscriptions}"
    assert "google_cloudfunctions2_function.ingest[each.value.sink]" in \
        block(push, "push_config")["push_endpoint"]
    dl = block(push, "dead_letter_policy")
    assert dl["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert "filter" not in push
    assert root["resource"]["google_pubsub_topic"]["replay"]["for_each"] == "${local.sinks}"
    cmd = text(root["output"]["dead_letter_replay_command"]["value"])
    assert "ess replay-dead-letters --subscription" in cmd and "local.dead_letter_routes" in cmd
