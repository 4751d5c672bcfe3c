# Log-based metrics, dashboard and alert policies.
#
# The metrics are defined on the structured JSON logs written by `ess.logs` (collector on the VM,
# ingest/export on Cloud Run). Fields of jsonPayload:
#   stage         poll | publish | spool | preprocess | store | accumulate (export) | status |
#                 event | rollup | retention
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
#   status, complete   a rollup run (stage=rollup): done | empty | busy; false when the watermark stayed
#   dropped, reason, past_due_days
#                 retention's line per raw range (stage=retention); reason of a kept range
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
      description = "Collector failures: connect failures (stage=poll with an error), polls with failed blocks (failed>0) and publish failures or stalls (stage=publish with an error)."
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

    # --- safety events (issue 22, docs/events.md): the ingest's stage=event line, one per
    # raised episode (written by the sink that notifies, ESS_EVENT_LOG) ---------------------
    ess_events_fault = {
      description = "Fault episodes raised (stage=event lines with alarm_severity fault: one per episode)."
      filter      = "jsonPayload.stage=\"event\" AND jsonPayload.alarm_severity=\"fault\""
      value       = null
      unit        = "1"
    }
    ess_events_warning = {
      description = "Warning episodes raised (stage=event lines with alarm_severity warning: one per episode)."
      filter      = "jsonPayload.stage=\"event\" AND jsonPayload.alarm_severity=\"warning\""
      value       = null
      unit        = "1"
    }
    ess_event_delay = {
      description = "Seconds from the poll that raised an episode to its event line (jsonPayload.delay_s of stage=event)."
      filter      = "jsonPayload.stage=\"event\" AND jsonPayload.delay_s:*"
      value       = "EXTRACT(jsonPayload.delay_s)"
      unit        = "s"
    }
    # --- end of safety events ----------------------------------------------------------------

    # --- the export function's upkeep tasks (issue 23; alerts_upkeep.tf): one stage=rollup line
    # per rollup run, one stage=retention line per raw range a retention run looked at ---------
    ess_rollup_runs = {
      description = "Rollup runs that brought the rollups up to date (stage=rollup, status done or empty, complete=true): not a busy run, not one whose watermark stayed, not a failure."
      filter      = "jsonPayload.stage=\"rollup\" AND jsonPayload.complete=true AND (jsonPayload.status=\"done\" OR jsonPayload.status=\"empty\")"
      value       = null
      unit        = "1"
    }
    ess_rollup_incomplete = {
      description = "Rollup runs that left the rollups behind: failed (stage=rollup with an error), busy (another run held the lock) or watermark held (complete=false: a ledger writer outlived the wait)."
      filter      = "jsonPayload.stage=\"rollup\" AND (jsonPayload.error:* OR jsonPayload.status=\"busy\" OR jsonPayload.complete=false)"
      value       = null
      unit        = "1"
    }
    ess_retention_dropped = {
      description = "Raw ranges (a UTC day's partitions or chunks) retention dropped (stage=retention, dropped=true)."
      filter      = "jsonPayload.stage=\"retention\" AND jsonPayload.dropped=true"
      value       = null
      unit        = "1"
    }
    ess_retention_kept = {
      description = "Raw ranges past raw_days that retention kept, for any reason (stage=retention, dropped=false; jsonPayload.reason says why)."
      filter      = "jsonPayload.stage=\"retention\" AND jsonPayload.dropped=false"
      value       = null
      unit        = "1"
    }
    ess_retention_unexported = {
      description = "Raw ranges retention still keeps as not exported a day or more after they fell due (stage=retention, reason \"not exported\", past_due_days>=1): a refusal that persists."
      filter      = "jsonPayload.stage=\"retention\" AND jsonPayload.reason=\"not exported\" AND jsonPayload.past_due_days>=1"
      value       = null
      unit        = "1"
    }
    # --- end of upkeep tasks -------------------------------------------------------------------
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

# Data status (issue 14): the daily export logs one stage=status line per bank and local day
# (functions/ess_functions/export.py), the collector one line when a bank freezes and one when
# its spool loses frames, retention one line per raw range it keeps. Each policy fires on a
# log-based counter of those lines, per site.
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
    # Issue 23: retention keeps a raw range for a reason no later run fixes by itself (its
    # lines carry no site: the line's mismatch names the sites, days and tables).
    retention_unexported = {
      metric = "ess_retention_unexported"
      name   = "ESS: retention keeps raw days that were not exported"
      doc    = <<-EOT
        Retention has kept a raw range (a UTC day's partitions or chunks) as `not exported` for a day or more after it fell due (`retention.raw_days` after its end): for a site-local day in it the export manifest is missing, lists a file that is gone or was replaced since, or counts other rows than the database holds, or the range holds rows of a site that is no longer configured. The run already re-exports site-days that got late frames and retries them, so no later run fixes this by itself; the rows stay in the database (storage grows) and nothing is lost. The `stage=retention` line (Logs Explorer, `jsonPayload.reason="not exported"`) lists in `mismatch` each site, day and table with the rows `present` and `exported`. Files missing or short (`exported` null or below `present`): export the day again (`ess export --date DAY`, or POST {"date": "DAY", "site": "SITE"} to the export function); the next retention run drops the range. Files holding more rows than the database: do not re-export (the files are the fuller copy); find where the rows went. An unknown site: add it to the sites file or delete its rows. See docs/scaling.md, "Monitoring rollups and retention".

        Why only this: a first refusal (0 days past due) may be a race with frames still arriving (a replay into old days); `busy` (ingest held the partition's lock) is retried by the next run; `rollups behind` clears once the rollup task covers the range, and if it does not, "ESS: rollups not up to date" fires; `no slices` means nothing was left to drop.
      EOT
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

# --- Safety events (issue 22, docs/events.md) ---------------------------------------------------
# One policy per severity, per site: an episode was raised (the ingest's stage=event line, counted
# by ess_events_fault / ess_events_warning). `ess events --site <site> --active` lists what is on.
locals {
  event_alerts = {
    fault = {
      metric   = "ess_events_fault"
      name     = "ESS: fault raised"
      severity = "CRITICAL"
      doc      = "A fault alarm was raised at site $${metric.label.site} (BMS or PCS fault bit, or a fault threshold; the log line names the bank, rack and alarm). Run `ess events --site $${metric.label.site} --active`, check the device and follow the site's fault procedure; see docs/events.md."
    }
    warning = {
      metric   = "ess_events_warning"
      name     = "ESS: warning raised"
      severity = "WARNING"
      doc      = "A warning alarm was raised at site $${metric.label.site}. Run `ess events --site $${metric.label.site}` to see whether it persists or repeats; see docs/events.md."
    }
  }
}

resource "google_monitoring_alert_policy" "events" {
  for_each = local.event_alerts

  project               = var.project_id
  display_name          = each.value.name
  combiner              = "OR"
  severity              = each.value.severity
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
        alignment_period     = "60s"
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
    auto_close = "3600s"
  }

  documentation {
    content   = each.value.doc
    mime_type = "text/markdown"
  }

  depends_on = [time_sleep.metric_descriptors]
}
# --- end of safety events ------------------------------------------------------------------------
