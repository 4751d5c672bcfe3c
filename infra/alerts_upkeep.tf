# Alerts on the export function's scheduled tasks (scheduler.tf): the daily export, the rollups
# and retention. A task that stops succeeding (its success line absent), and any failed Cloud
# Scheduler attempt of any job. Retention keeping raw days for a reason an operator must fix
# alerts through monitoring.tf (status_alerts.retention_unexported). docs/scaling.md,
# "Monitoring rollups and retention".

locals {
  # task => the counter of its success lines (log_metrics), how long it may be absent, and what
  # to do. Each alert also waits window_s after it was first deployed (task_missed_since): no
  # alert before the first scheduled run.
  task_missed = {
    export = {
      metric    = "ess_export_runs"
      window_s  = 93600
      name      = "ESS: daily export missed"
      condition = "No successful export in 26 hours"
      doc       = "The export function (${google_cloudfunctions2_function.export.name}) logged no successful run (stage=accumulate) for 26 hours. Check Cloud Scheduler job ${google_cloud_scheduler_job.export.name}."
    }
    rollup = {
      metric    = "ess_rollup_runs"
      window_s  = var.retention.rollup_stale_minutes * 60
      name      = "ESS: rollups not up to date for ${var.retention.rollup_stale_minutes} minutes"
      condition = "No complete rollup run in ${var.retention.rollup_stale_minutes} minutes"
      doc       = "No rollup run brought the 1-minute and 1-hour rollups up to date (a stage=rollup line with status done and complete=true) for ${var.retention.rollup_stale_minutes} minutes: dashboards on the rollups fall behind, and retention keeps raw days whose rollups are behind. The export function's stage=rollup lines say why: an error (database down; missing grants: run db_grants_sql after the migration), status busy (another run held the lock: a long catch-up) or `watermark held` (a transaction writing to the ledger outlived the 30 s wait: a stuck ingest or a long manual write). Check Cloud Scheduler job ${google_cloud_scheduler_job.upkeep["rollup"].name}; `ess db rollup --dsn DSN` catches up by hand."
    }
  }

  # Every Cloud Scheduler job of the pipeline, by task.
  scheduler_jobs = merge({ export = google_cloud_scheduler_job.export }, google_cloud_scheduler_job.upkeep)
  scheduler_failed_doc = {
    export    = "Cloud Scheduler could not call the export function successfully for the daily export (it retries 3 times; \"ESS: daily export missed\" follows if no run succeeds). The function's stage=accumulate lines with an error say why. A day never exported is kept by retention until it is."
    rollup    = "A rollup run failed (the job runs every few minutes and the next run catches up). The function's stage=rollup line with an error says why; if runs keep failing, \"ESS: rollups not up to date\" fires."
    retention = "The daily retention run failed: no raw day was dropped this time, and the next daily run tries again. The function's stage=retention line with an error says why; `ess retention` runs it by hand."
  }
}

# When each task_missed alert was first deployed (the export's: with the first monitoring).
resource "time_static" "task_missed_since" {
  for_each = local.task_missed

  depends_on = [google_logging_metric.ess]
}

moved {
  from = time_static.monitoring_deployed
  to   = time_static.task_missed_since["export"]
}

resource "google_monitoring_alert_policy" "task_missed" {
  for_each = local.task_missed

  project               = var.project_id
  display_name          = each.value.name
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = each.value.condition
    # Absent for window_s, and at least window_s since this alert was deployed.
    condition_prometheus_query_language {
      query                     = "absent_over_time(logging_googleapis_com:user_${google_logging_metric.ess[each.value.metric].name}[${each.value.window_s}s]) and on() (vector(time()) > ${time_static.task_missed_since[each.key].unix + each.value.window_s})"
      duration                  = "0s"
      evaluation_interval       = "300s"
      disable_metric_validation = true
    }
  }

  documentation {
    content   = each.value.doc
    mime_type = "text/markdown"
  }
}

moved {
  from = google_monitoring_alert_policy.export_missed
  to   = google_monitoring_alert_policy.task_missed["export"]
}

resource "google_monitoring_alert_policy" "scheduler_failed" {
  for_each = local.scheduler_jobs

  project               = var.project_id
  display_name          = "ESS: ${each.key} scheduler attempt failed"
  combiner              = "OR"
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = "Cloud Scheduler attempt error"
    condition_matched_log {
      filter = "resource.type=\"cloud_scheduler_job\" AND resource.labels.job_id=\"${each.value.name}\" AND severity>=ERROR"
    }
  }

  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }

  documentation {
    content   = "Cloud Scheduler job ${each.value.name} could not call the export function successfully. ${local.scheduler_failed_doc[each.key]}"
    mime_type = "text/markdown"
  }
}

moved {
  from = google_monitoring_alert_policy.export_job_failed
  to   = google_monitoring_alert_policy.scheduler_failed["export"]
}
