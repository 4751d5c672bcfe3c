# Cloud Run functions (2nd gen). The ingest functions are HTTP-triggered and invoked by the push
# subscriptions: `ingest` is a CloudEvent function and functions-framework converts a raw Pub/Sub
# push body into a CloudEvent. Only the invoker SA may call them; only the scheduler SA may call export.

resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Holds only function container images built from this public repository; Google-managed encryption is sufficient.
  project       = var.project_id
  location      = var.region
  repository_id = "${var.prefix}-functions"
  format        = "DOCKER"
  description   = "Container images of the ESS Cloud Run functions"
  labels        = local.labels

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 5
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_artifact_registry_repository_iam_member" "builder_writer" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.component["builder"].email}"
}

# IAM grants take up to a minute to reach Cloud Build and Cloud Run; a build that starts earlier
# fails with "Access to bucket gcf-v2-sources-... denied" (provider issue 20571).
resource "time_sleep" "iam_propagation" {
  create_duration = "60s"

  depends_on = [
    google_project_iam_member.component,
    google_project_iam_member.builder_sources,
    google_storage_bucket_iam_member.builder_sources,
    google_storage_bucket_iam_member.artifacts_reader,
    google_artifact_registry_repository_iam_member.builder_writer,
    google_secret_manager_secret_iam_member.main_dsn_accessor,
    google_secret_manager_secret_iam_member.replica_dsn_accessor,
  ]
}

resource "google_cloudfunctions2_function" "ingest" {
  for_each = local.sinks

  project     = var.project_id
  name        = "${var.prefix}-ingest-${each.key}"
  location    = var.region
  description = "Decode frame messages pushed by Pub/Sub and store them in the ${each.key} database"
  labels      = local.labels

  build_config {
    runtime           = var.function_runtime
    entry_point       = "ingest"
    service_account   = google_service_account.component["builder"].id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.this["artifacts"].name
        object = google_storage_bucket_object.ingest_source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.component[each.value.sa].email
    ingress_settings                 = var.function_ingress
    all_traffic_on_latest_revision   = true
    available_memory                 = var.ingest.memory
    available_cpu                    = var.ingest.cpu
    max_instance_request_concurrency = var.ingest.concurrency
    min_instance_count               = var.ingest.min_instances
    max_instance_count               = var.ingest.max_instances
    timeout_seconds                  = var.ingest.timeout_seconds
    vpc_connector                    = google_vpc_access_connector.functions.id
    vpc_connector_egress_settings    = var.function_vpc_egress

    # Instances load sites.yaml once; its md5 in the env rolls a new revision when it changes.
    environment_variables = merge(
      {
        ESS_SINK              = each.key
        ESS_SITES_CONFIG      = local.sites_uri
        ESS_SITES_CONFIG_MD5  = google_storage_bucket_object.sites.md5hash
        ESS_QUARANTINE_BUCKET = google_storage_bucket.this["quarantine"].name
        # functions-framework serves with THREADS threads (default 4 per CPU): one per
        # concurrent push, so that group commit sees every waiting message.
        THREADS = tostring(var.ingest.concurrency)
      },
      each.value.instance == null ? {} : {
        ESS_DB_INSTANCE = each.value.instance
        ESS_DB_NAME     = var.database.name
        ESS_DB_USER     = each.value.db_iam_user
      },
    )

    dynamic "secret_environment_variables" {
      for_each = each.value.dsn_secret == null ? [] : [each.value.dsn_secret]
      content {
        key        = "ESS_DB_DSN"
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  depends_on = [time_sleep.iam_propagation]
}

resource "google_cloudfunctions2_function" "export" {
  project     = var.project_id
  name        = "${var.prefix}-export"
  location    = var.region
  description = "Daily CSV export from the main database to the CSV bucket"
  labels      = local.labels

  build_config {
    runtime           = var.function_runtime
    entry_point       = "export"
    service_account   = google_service_account.component["builder"].id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.this["artifacts"].name
        object = google_storage_bucket_object.export_source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.component["export"].email
    ingress_settings                 = var.function_ingress
    all_traffic_on_latest_revision   = true
    available_memory                 = var.export.memory
    available_cpu                    = var.export.cpu
    max_instance_request_concurrency = var.export.concurrency
    min_instance_count               = var.export.min_instances
    max_instance_count               = var.export.max_instances
    timeout_seconds                  = var.export.timeout_seconds
    vpc_connector                    = google_vpc_access_connector.functions.id
    vpc_connector_egress_settings    = var.function_vpc_egress

    environment_variables = merge(
      {
        ESS_SITES_CONFIG     = local.sites_uri
        ESS_SITES_CONFIG_MD5 = google_storage_bucket_object.sites.md5hash
        ESS_EXPORT_BUCKET    = google_storage_bucket.this["csv"].name
      },
      # retention tiers (issue 23; 0 = forever): read by the export function's retention task
      {
        ESS_RETENTION_RAW_DAYS    = tostring(var.retention.raw_days)
        ESS_RETENTION_MINUTE_DAYS = tostring(var.retention.minute_rollup_days)
        ESS_RETENTION_HOUR_DAYS   = tostring(var.retention.hour_rollup_days)
      },
      local.main_sql ? {
        ESS_DB_INSTANCE = google_sql_database_instance.this["main"].connection_name
        ESS_DB_NAME     = var.database.name
        ESS_DB_USER     = google_sql_user.iam["export"].name
      } : {},
    )

    dynamic "secret_environment_variables" {
      for_each = local.main_sql ? [] : [data.google_secret_manager_secret.main_dsn[0].secret_id]
      content {
        key        = "ESS_DB_DSN"
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  depends_on = [time_sleep.iam_propagation]
}

# Invocation rights on the underlying Cloud Run services (service name = function name).
resource "google_cloud_run_v2_service_iam_member" "ingest_invoker" {
  for_each = local.sinks

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.ingest[each.key].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.component["invoker"].email}"
}

resource "google_cloud_run_v2_service_iam_member" "export_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.export.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.component["scheduler"].email}"
}
