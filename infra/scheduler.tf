# Daily export (var.export_format), called with an OIDC token of the scheduler service account.
resource "google_cloud_scheduler_job" "export" {
  project          = var.project_id
  region           = var.region
  name             = "${var.prefix}-daily-export"
  description      = "Daily CSV export of the previous day (${var.export_time_zone})"
  schedule         = var.export_schedule
  time_zone        = var.export_time_zone
  attempt_deadline = "${min(var.export.timeout_seconds, 1800)}s"

  retry_config {
    retry_count          = 3
    min_backoff_duration = "60s"
    max_backoff_duration = "600s"
    max_doublings        = 3
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.export.service_config[0].uri
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode({ trigger = "scheduler", format = var.export_format }))

    oidc_token {
      service_account_email = google_service_account.component["scheduler"].email
      audience              = google_cloudfunctions2_function.export.service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.export_invoker]
}

# --- rollups and retention (issue 23): the export function's other tasks ---------------------
# Rollups every few minutes (the dashboards' freshness); retention daily, after the export.
resource "google_cloud_scheduler_job" "upkeep" {
  for_each = {
    rollup = {
      schedule    = var.retention.rollup_schedule
      description = "Rollups: recompute the minutes and hours of frames committed since the last run"
      body        = { trigger = "scheduler", task = "rollup" }
    }
    retention = {
      schedule    = var.retention.schedule
      description = "Retention: drop raw days past ${var.retention.raw_days} days whose export manifests match"
      body        = { trigger = "scheduler", task = "retention", format = var.export_format }
    }
  }

  project          = var.project_id
  region           = var.region
  name             = "${var.prefix}-${each.key}"
  description      = each.value.description
  schedule         = each.value.schedule
  time_zone        = var.export_time_zone
  attempt_deadline = "${min(var.export.timeout_seconds, 1800)}s"

  retry_config {
    retry_count          = 1
    min_backoff_duration = "60s"
    max_backoff_duration = "300s"
    max_doublings        = 2
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.export.service_config[0].uri
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode(each.value.body))

    oidc_token {
      service_account_email = google_service_account.component["scheduler"].email
      audience              = google_cloudfunctions2_function.export.service_config[0].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.export_invoker]
}
