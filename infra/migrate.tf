# The database job (issue 21): a first deploy's tables and grants, made by a migration identity.
#
# One Cloud Run job per Cloud SQL instance runs as the `migrate` service account, an IAM database
# user of that instance, through the Cloud SQL connector (private IP, the functions' VPC
# connector). It installs the wheel over the pinned requirements (templates/db-job.sh.tftpl) and
# runs `ess db setup`: own schema public, migrate the maps sites.yaml uses, create the coming
# partitions, grant the ingest and export users (schemas/ess/db/setup.py). The same job runs any
# other `ess` command as the schema owner with `--args`, e.g. `ess status` or `ess redecode`
# (docs/deploy.md). A fresh instance's IAM users have no rights: the migration user gets the
# cloudsqlsuperuser role once with `gcloud sql users assign-roles` (output db_setup_commands;
# google provider 6.x has no `database_roles` on google_sql_user).

resource "google_sql_user" "migrate" {
  for_each = local.sql_instances

  project  = var.project_id
  instance = google_sql_database_instance.this[each.key].name
  name     = trimsuffix(google_service_account.component["migrate"].email, ".gserviceaccount.com")
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"

  # It owns the schema and every table; the instance's deletion removes it.
  deletion_policy = "ABANDON"
}

# `ess redecode` from the raw archive into one sink (docs/deploy.md) runs in this job.
resource "google_storage_bucket_iam_member" "raw_reader" {
  bucket = google_storage_bucket.this["raw"].name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.component["migrate"].email}"
}

locals {
  # Per Cloud SQL instance: its ingest users (writers) and export users (readers).
  db_job_grants = {
    main    = { writers = ["ingest-main"], readers = ["export"] }
    replica = { writers = ["ingest-replica"], readers = [] }
  }
  db_job_script = templatefile("${path.module}/templates/db-job.sh.tftpl", {
    requirements = local.pinned_requirements
    pip_version  = local.pip_version
  })
}

resource "google_cloud_run_v2_job" "db" {
  for_each = local.sql_instances

  project             = var.project_id
  name                = "${var.prefix}-db-${each.key}"
  location            = var.region
  deletion_protection = false
  labels              = local.labels

  template {
    task_count = 1

    template {
      service_account = google_service_account.component["migrate"].email
      timeout         = "${var.db_job.timeout_seconds}s"
      max_retries     = 0

      vpc_access {
        connector = google_vpc_access_connector.functions.id
        egress    = "PRIVATE_RANGES_ONLY"
      }

      containers {
        image   = var.db_job.image
        command = ["/bin/bash", "-c", local.db_job_script, "ess-db-job"]
        # `gcloud run jobs execute ... --args=...` replaces these (any `ess` command).
        args = concat(
          ["db", "setup", "--config", local.sites_uri],
          flatten([for sa in local.db_job_grants[each.key].writers : ["--writer", google_sql_user.iam[sa].name]]),
          flatten([for sa in local.db_job_grants[each.key].readers : ["--reader", google_sql_user.iam[sa].name]]),
        )

        env {
          name  = "ESS_DB_INSTANCE"
          value = google_sql_database_instance.this[each.key].connection_name
        }
        env {
          name  = "ESS_DB_NAME"
          value = var.database.name
        }
        env {
          name  = "ESS_DB_USER"
          value = google_sql_user.migrate[each.key].name
        }
        env {
          name  = "ESS_SITES_CONFIG"
          value = local.sites_uri
        }
        env {
          name  = "ESS_ARTIFACTS_BUCKET"
          value = google_storage_bucket.this["artifacts"].name
        }
        env {
          name  = "ESS_WHEEL_OBJECT"
          value = google_storage_bucket_object.collector_wheel.name
        }

        resources {
          limits = {
            cpu    = "1"
            memory = "1Gi"
          }
        }
      }
    }
  }

  depends_on = [time_sleep.iam_propagation]
}
