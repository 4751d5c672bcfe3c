# Cloud SQL for PostgreSQL: private IP only, IAM database authentication, backups with PITR.
# Note: Cloud SQL does not offer the timescaledb extension; ess.db then creates daily partitions
# instead of hypertables.
# Use database.external_dsn_secret.main / .replica for TimescaleDB sinks.

resource "random_id" "db_suffix" {
  byte_length = 3
}

# One instance per sink that is not an external DSN (local.main_sql / local.replica_sql). The
# instances differ only in what this map says; settings, flags and backups below are common.
locals {
  sql_instance_settings = {
    main = {
      enabled         = local.main_sql
      region          = var.region
      zone            = var.zone
      maintenance_day = 7
    }
    replica = {
      enabled         = local.replica_sql
      region          = local.replica_region
      zone            = var.database.replica_zone # checked against the region by the precondition below
      maintenance_day = 6
    }
  }
  sql_instances = { for k, v in local.sql_instance_settings : k => v if v.enabled }

  # IAM database users (ESS_DB_USER): service-account key => instance key. Table privileges are
  # SQL grants applied with the migrations: ingest-* get INSERT (+ SELECT for ON CONFLICT), export
  # gets SELECT only (see output db_grants_sql).
  sql_iam_users = {
    for sa, instance in {
      "ingest-main"    = "main"
      export           = "main"
      "ingest-replica" = "replica"
    } : sa => instance if contains(keys(local.sql_instances), instance)
  }
}

# Database flags (identical on both instances): IAM database authentication, pgAudit for DDL and
# role changes, and the logging flags checkov's Cloud SQL PostgreSQL checks require
# (checkpoints, connections, lock waits, hostnames, durations, temp files, error levels).
resource "google_sql_database_instance" "this" {
  #checkov:skip=CKV2_GCP_13:log_duration=on writes a log line per statement, one per ingest insert at 1 Hz per site (Cloud Logging cost); slow statements are still visible through Query Insights.
  #checkov:skip=CKV_GCP_79:Major version is pinned by var.database.version (default POSTGRES_17); a major upgrade is a deliberate, tested migration of the telemetry schema, not a static default.
  for_each = local.sql_instances

  project             = var.project_id
  name                = "${var.prefix}-${each.key}-${random_id.db_suffix.hex}"
  region              = each.value.region
  database_version    = var.database.version
  deletion_protection = var.database.deletion_protection

  settings {
    tier                        = var.database.tier
    edition                     = "ENTERPRISE"
    availability_type           = var.database.availability_type
    disk_type                   = "PD_SSD"
    disk_size                   = var.database.disk_size_gb
    disk_autoresize             = true
    deletion_protection_enabled = var.database.deletion_protection
    user_labels                 = local.labels

    location_preference {
      zone = each.value.zone
    }

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = google_compute_network.vpc.id
      ssl_mode                                      = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
      enable_private_path_for_google_cloud_services = true
    }

    backup_configuration {
      enabled                        = true
      start_time                     = var.database.backup_start_time
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = var.database.pitr_log_retention_days

      backup_retention_settings {
        retained_backups = var.database.backup_retained_count
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = each.value.maintenance_day
      hour         = 19
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }

    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }

    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }

    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }

    database_flags {
      name  = "log_connections"
      value = "on"
    }

    database_flags {
      name  = "log_disconnections"
      value = "on"
    }

    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }

    database_flags {
      name  = "log_hostname"
      value = "on"
    }

    # Off: "on" logs the duration of every statement, a line per ingest insert (cost).
    database_flags {
      name  = "log_duration"
      value = "off"
    }

    database_flags {
      name  = "log_temp_files"
      value = "0"
    }

    database_flags {
      name  = "log_min_messages"
      value = "error"
    }

    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }

    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }

    database_flags {
      name  = "log_statement"
      value = "ddl"
    }

    database_flags {
      name  = "max_connections"
      value = var.database.max_connections
    }
  }

  lifecycle {
    # disk_autoresize grows the disk; a plan must not try to shrink it back.
    ignore_changes = [settings[0].disk_size]

    precondition {
      condition     = each.key != "replica" || startswith(var.database.replica_zone, local.replica_region)
      error_message = "database.replica_zone must be a zone of database.replica_region (or of region when that is null)."
    }
  }

  depends_on = [google_service_networking_connection.private_services]
}

resource "google_sql_database" "this" {
  for_each = local.sql_instances

  project  = var.project_id
  instance = google_sql_database_instance.this[each.key].name
  name     = var.database.name

  # The instance's deletion drops it; deleting it first fails while IAM users still own objects.
  deletion_policy = "ABANDON"
}

resource "google_sql_user" "iam" {
  for_each = local.sql_iam_users

  project  = var.project_id
  instance = google_sql_database_instance.this[each.value].name
  name     = trimsuffix(google_service_account.component[each.key].email, ".gserviceaccount.com")
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"

  # Dropping a role that owns or was granted objects fails; the instance's deletion removes it.
  deletion_policy = "ABANDON"
}

# These were count-based resources per instance before; keep their state across the rename.
moved {
  from = google_sql_database_instance.main[0]
  to   = google_sql_database_instance.this["main"]
}

moved {
  from = google_sql_database_instance.replica[0]
  to   = google_sql_database_instance.this["replica"]
}

moved {
  from = google_sql_database.main[0]
  to   = google_sql_database.this["main"]
}

moved {
  from = google_sql_database.replica[0]
  to   = google_sql_database.this["replica"]
}

moved {
  from = google_sql_user.ingest_main[0]
  to   = google_sql_user.iam["ingest-main"]
}

moved {
  from = google_sql_user.export[0]
  to   = google_sql_user.iam["export"]
}

moved {
  from = google_sql_user.ingest_replica[0]
  to   = google_sql_user.iam["ingest-replica"]
}
