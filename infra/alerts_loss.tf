# Alerts on what can otherwise be lost silently (issue 21): a subscription whose oldest message
# waits too long (a sink, the raw archive or the dead letters nobody replays). Thresholds:
# var.backlog_alert_age_seconds; docs/deploy.md. The collector spool's losses alert through
# monitoring.tf (status_alerts.spool_lost, metric ess_spool_errors).

locals {
  backlog_doc = {
    ingest      = "A sink is not storing: its ingest function fails (database down or unreachable, a bug). Messages are retried for about 16 hours (max_delivery_attempts), then dead-lettered; see docs/deploy.md, \"Outages longer than the retry budget\"."
    raw_archive = "The raw archive (Cloud Storage subscription) is not writing to the raw bucket: check the bucket and the Pub/Sub service agent's rights on it. Its messages expire after subscription_message_retention; every recovery path (ess redecode) relies on this archive."
    dead_letter = "Dead-lettered messages are waiting and expire 7 days after they were dead-lettered. Once the sink is back, run Terraform's dead_letter_replay_command (ess replay-dead-letters); see docs/deploy.md."
  }

  # alert key => subscription, age threshold and what to do
  backlog_alerts = merge(
    { for k, s in google_pubsub_subscription.ingest : "ingest-${k}" => {
      subscription = s.name, max_age_s = var.backlog_alert_age_seconds.ingest, doc = local.backlog_doc.ingest
    } },
    {
      raw-archive = {
        subscription = google_pubsub_subscription.raw_archive.name
        max_age_s    = var.backlog_alert_age_seconds.raw_archive
        doc          = local.backlog_doc.raw_archive
      }
      dead-letter = {
        subscription = google_pubsub_subscription.dead_letter.name
        max_age_s    = var.backlog_alert_age_seconds.dead_letter
        doc          = local.backlog_doc.dead_letter
      }
    },
  )
}

resource "google_monitoring_alert_policy" "backlog_age" {
  for_each = local.backlog_alerts

  project               = var.project_id
  display_name          = "ESS: oldest message of ${each.value.subscription} older than ${each.value.max_age_s} s"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "oldest_unacked_message_age > ${each.value.max_age_s} s"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${each.value.subscription}\""
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.max_age_s
      duration        = "300s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    content   = "The oldest unacknowledged message of subscription ${each.value.subscription} is older than ${each.value.max_age_s} s. ${each.value.doc}"
    mime_type = "text/markdown"
  }

  depends_on = [google_project_service.apis]
}
