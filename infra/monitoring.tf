# Log-based metrics, dashboard and alert policies.
#
# The metrics are defined on the structured JSON logs written by `ess.logs` (collector on the VM,
# ingest/export on Cloud Run). Fields of jsonPayload:
#   stage         poll | publish | spool | preprocess | store | accumulate (export)
#   site          site id                       frames        frames in the message / poll
#   rows          rows written (store) or exported (accumulate)
#   duplicates    rows skipped by ON CONFLICT DO NOTHING
#   out_of_range  number of values outside the register map's range
#   error         error text (present only on failures; a store failure also carries site and frames)
#   failed        failed register blocks of one poll (collector; 0 when they recover)
#   lag_s         seconds from poll start to row commit (store; feeds the lag distribution)
#   frozen        true on the collector's line when a bank's registers freeze, false when they thaw
#   completeness_pct, lost, missed, failed, frozen_s
#                 the export's data status line (stage=status), one per bank and local day
# Metric names are fixed (dashboards/ess.json and dashboard.tf refer to them), so deploy one pipeline per project.

locals {
  log_metric_labels = {
    site    = { description = "ESS site id", extractor = "EXTRACT(jsonPayload.site)" }
    service = { description = "Cloud Run service (function) that wrote the entry; empty on the VM", extractor = "EXTRACT(resource.labels.service_name)" }
  }

  # name => { filter, value (null = counter of matching entries), unit, description }
  log_metrics = {
    ess_store_batches = {
      description = "Messages stored per site and sink (one log entry per stored message; store failures excluded)."
      filter      = "jsonPayload.stage=\"store\" AND jsonPayload.site:* AND jsonPayload.rows:* AND NOT jsonPayload.error:*"
      value       = null
      unit        = "1"
    }
    ess_frames_ingested = {
      description = "Frames ingested (jsonPayload.frames of stored messages; store failures excluded)."
      filter      = "jsonPayload.stage=\"store\" AND jsonPayload.site:* AND jsonPayload.frames:* AND NOT jsonPayload.error:*"
      value       = "EXTRACT(jsonPayload.frames)"
      unit        = "1"
    }
    ess_rows_written = {
      description = "Rows newly stored, duplicates not counted (jsonPayload.inserted of stage=store)."
      filter      = "jsonPayload.stage=\"store\" AND jsonPayload.inserted:*"
      value       = "EXTRACT(jsonPayload.inserted)"
      unit        = "1"
    }
    ess_duplicates = {
      description = "Duplicate rows skipped (jsonPayload.duplicates of stage=store)."
      filter      = "jsonPayload.stage=\"store\" AND jsonPayload.duplicates>0"
      value       = "EXTRACT(jsonPayload.duplicates)"
      unit        = "1"
    }
    ess_decode_errors = {
      description = "Messages that failed to decode (stage=preprocess with an error)."
      filter      = "jsonPayload.stage=\"preprocess\" AND jsonPayload.error:*"
      value       = null
      unit        = "1"
    }
    ess_out_of_range = {
      description = "Out-of-range values (jsonPayload.out_of_range of stage=preprocess)."
      filter      = "jsonPayload.stage=\"preprocess\" AND jsonPayload.out_of_range>0"
      value       = "EXTRACT(jsonPayload.out_of_range)"
      unit        = "1"
    }
    ess_poll_errors = {
      description = "Collector failures: connect failures (stage=poll with an error), polls with failed blocks (failed>0) and publish failures (stage=publish with an error)."
      filter      = "(jsonPayload.stage=\"poll\" AND (jsonPayload.error:* OR jsonPayload.failed>0)) OR (jsonPayload.stage=\"publish\" AND jsonPayload.error:*)"
      value       = null
      unit        = "1"
    }
    ess_poll_to_row_lag = {
      description = "Seconds from poll start to row commit (jsonPayload.lag_s of stage=store)."
      filter      = "jsonPayload.stage=\"store\" AND jsonPayload.lag_s:*"
      value       = "EXTRACT(jsonPayload.lag_s)"
      unit        = "s"
    }
    ess_export_rows = {
      description = "Rows exported to CSV (jsonPayload.rows of stage=accumulate)."
      filter      = "jsonPayload.stage=\"accumulate\" AND jsonPayload.rows:*"
      value       = "EXTRACT(jsonPayload.rows)"
      unit        = "1"
    }
    ess_export_runs = {
      description = "Successful export log entries (stage=accumulate without error)."
      filter      = "jsonPayload.stage=\"accumulate\" AND NOT jsonPayload.error:*"
      value       = null
      unit        = "1"
    }
    ess_day_completeness = {
      description = "Completeness of a bank's local day in percent (jsonPayload.completeness_pct of the export's data status line stage=status; one per bank and day)."
      filter      = "jsonPayload.stage=\"status\" AND jsonPayload.completeness_pct:*"
      value       = "EXTRACT(jsonPayload.completeness_pct)"
      unit        = "%"
    }
    ess_day_lost_frames = {
      description = "Lost frames of a bank's local day (jsonPayload.lost of the export's data status line stage=status, 0 included; one per bank and day)."
      filter      = "jsonPayload.stage=\"status\" AND jsonPayload.lost:*"
      value       = "EXTRACT(jsonPayload.lost)"
      unit        = "1"
    }
    ess_days_with_loss = {
      description = "Bank-days with lost frames (data status lines stage=status with lost>0)."
      filter      = "jsonPayload.stage=\"status\" AND jsonPayload.lost>0"
      value       = null
      unit        = "1"
    }
    ess_days_incomplete = {
      description = "Bank-days whose completeness is below var.completeness_threshold_percent (data status lines stage=status)."
      filter      = "jsonPayload.stage=\"status\" AND jsonPayload.completeness_pct<${var.completeness_threshold_percent}"
      value       = null
      unit        = "1"
    }
    # Issue 21: the collector's spool lost frames (a bound dropped them, a write failed) or set a
    # corrupt row aside; each ERROR line of stage=spool counts once (`frames` says how many).
    ess_spool_errors = {
      description = "Collector spool errors: frames dropped by the spool's size or age bound, lost to a failed write (full disk), or set aside as corrupt (stage=spool, severity ERROR)."
      filter      = "jsonPayload.stage=\"spool\" AND severity>=ERROR"
      value       = null
      unit        = "1"
    }
    ess_frozen_banks = {
      description = "Banks that froze (the collector's line when every block has returned identical registers for frozen_after s: stage=poll, frozen=true; not the thaw line)."
      filter      = "jsonPayload.stage=\"poll\" AND jsonPayload.frozen=true"
      value       = null
      unit        = "1"
    }
  }
}

resource "google_logging_metric" "ess" {
  for_each = local.log_metrics

  project          = var.project_id
  name             = each.key
  description      = each.value.description
  filter           = each.value.filter
  value_extractor  = each.value.value
  label_extractors = { for k, v in local.log_metric_labels : k => v.extractor }

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = each.value.value == null ? "INT64" : "DISTRIBUTION"
    unit        = each.value.unit

    dynamic "labels" {
      for_each = local.log_metric_labels
      content {
        key         = labels.key
        value_type  = "STRING"
        description = labels.value.description
      }
    }
  }

  dynamic "bucket_options" {
    for_each = each.value.value == null ? [] : [1]
    content {
      exponential_buckets {
        num_finite_buckets = 32
        growth_factor      = 2
        scale              = 0.01
      }
    }
  }

  depends_on = [google_project_service.apis]
}

# New metric descriptors take up to 10 minutes to appear (provider issue 11102); the metric
# conditions below are validated against them on create.
resource "time_sleep" "metric_descriptors" {
  create_duration = "600s"

  depends_on = [google_logging_metric.ess]
}

# When the monitoring was first deployed: export_missed waits 26 h from here before it may fire.
resource "time_static" "monitoring_deployed" {
  depends_on = [google_logging_metric.ess]
}

resource "google_monitoring_dashboard" "ess" {
  project        = var.project_id
  dashboard_json = local.dashboard_json # dashboards/ess.json and the per-site tiles (dashboard.tf)

  depends_on = [google_logging_metric.ess]
}

# --- alert policies ---------------------------------------------------------------

resource "google_monitoring_alert_policy" "site_silent" {
  project               = var.project_id
  display_name          = "ESS: no data from a site for ${var.site_silence_minutes} minutes"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "No stored frames per site"
    condition_absent {
      filter   = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.ess["ess_store_batches"].name}\" AND resource.type=\"cloud_run_revision\""
      duration = "${var.site_silence_minutes * 60}s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.site", "metric.label.service"]
      }

      trigger {
        count = 1
      }
    }
  }

  depends_on = [time_sleep.metric_descriptors]

  documentation {
    content   = "No frames from site $${metric.label.site} were stored by $${metric.label.service} for ${var.site_silence_minutes} minutes (per sink: a database outage silences its sink even while the other stores). Check the collector VM (`journalctl -u ess-collector`), the site's Modbus link and the ingest functions."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "ESS: dead-lettered frame messages"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "Dead-letter backlog > 0"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=\"${google_pubsub_subscription.dead_letter.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "60s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    content   = "Messages failed ${var.max_delivery_attempts} deliveries and sit in subscription ${google_pubsub_subscription.dead_letter.name}. Inspect them, fix the cause, then replay."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "function_errors" {
  project               = var.project_id
  display_name          = "ESS: function error rate"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "5xx ratio above ${var.function_error_ratio_threshold}"
    condition_threshold {
      filter             = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.label.service_name=starts_with(\"${var.prefix}-\") AND metric.label.response_code_class=\"5xx\""
      denominator_filter = "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.label.service_name=starts_with(\"${var.prefix}-\")"
      comparison         = "COMPARISON_GT"
      threshold_value    = var.function_error_ratio_threshold
      duration           = "300s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }

      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.service_name"]
      }
    }
  }

  documentation {
    content   = "A Cloud Run function of the ESS pipeline returns 5xx for more than ${var.function_error_ratio_threshold * 100}% of requests."
    mime_type = "text/markdown"
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "export_missed" {
  project               = var.project_id
  display_name          = "ESS: daily export missed"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "No successful export in 26 hours"
    # Absent for 26 h, and at least 26 h since the monitoring was deployed (no alert right after
    # the first apply, before the first scheduled run).
    condition_prometheus_query_language {
      query                     = "absent_over_time(logging_googleapis_com:user_${google_logging_metric.ess["ess_export_runs"].name}[26h]) and on() (vector(time()) > ${time_static.monitoring_deployed.unix + 93600})"
      duration                  = "0s"
      evaluation_interval       = "300s"
      disable_metric_validation = true
    }
  }

  documentation {
    content   = "The export function (${google_cloudfunctions2_function.export.name}) logged no successful run (stage=accumulate) for 26 hours. Check Cloud Scheduler job ${google_cloud_scheduler_job.export.name}."
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "export_job_failed" {
  project               = var.project_id
  display_name          = "ESS: export scheduler attempt failed"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "Cloud Scheduler attempt error"
    condition_matched_log {
      filter = "resource.type=\"cloud_scheduler_job\" AND resource.labels.job_id=\"${google_cloud_scheduler_job.export.name}\" AND severity>=ERROR"
    }
  }

  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }

  documentation {
    content   = "Cloud Scheduler could not call the export function successfully."
    mime_type = "text/markdown"
  }
}

# Data status (issue 14): the daily export logs one stage=status line per bank and local day
# (functions/ess_functions/export.py), the collector one line when a bank freezes and one when
# its spool loses frames. Each policy fires on a log-based counter of those lines, per site.
locals {
  status_alerts = {
    frames_lost = {
      metric = "ess_days_with_loss"
      name   = "ESS: frames lost"
      doc    = "The daily data status of site $${metric.label.site} reports lost frames (a sequence gap: polled, then lost between the spool and the database). Run `ess status --site $${metric.label.site} --date <day>` for the seq ranges and times; see docs/data-status.md."
    }
    day_incomplete = {
      metric = "ess_days_incomplete"
      name   = "ESS: a day's completeness below ${var.completeness_threshold_percent}%"
      doc    = "A bank of site $${metric.label.site} stored less than ${var.completeness_threshold_percent}% of the expected ticks of a local day (normally yesterday, the scheduled export's day). `ess status --site $${metric.label.site} --date <day>` splits it into missed, failed and lost."
    }
    bank_frozen = {
      metric = "ess_frozen_banks"
      name   = "ESS: frozen device"
      doc    = "A bank of site $${metric.label.site} has returned byte-identical registers in every block for collector.frozen_after seconds (a BMS that hangs but answers). Check the device; the collector logs when it thaws."
    }
    # Issue 21: the collector's spool lost frames (its lines carry no site: a drop spans sites).
    spool_lost = {
      metric = "ess_spool_errors"
      name   = "ESS: collector spool lost frames"
      doc    = "The collector's spool dropped frames (its size or age bound, during a long Pub/Sub outage), lost them to a failed write (a full disk) or set a corrupt row aside. `journalctl -u ess-collector | grep '\"stage\": \"spool\"'` names the frames' seq ranges; they count as lost in `ess status`. Fix the disk or the link, or raise collector.spool.max_mb / max_age_hours."
    }
  }
}

resource "google_monitoring_alert_policy" "status" {
  for_each = local.status_alerts

  project               = var.project_id
  display_name          = each.value.name
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "${each.value.metric} > 0 per site"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.ess[each.value.metric].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.site"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    content   = each.value.doc
    mime_type = "text/markdown"
  }

  depends_on = [time_sleep.metric_descriptors]
}
