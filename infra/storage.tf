# Buckets: uniform access, public access prevention enforced, versioning, lifecycle, access logs.

# The access-log bucket stays a separate resource: the data buckets below log into it (a for_each
# resource cannot reference its own instances), it does not log itself (CKV_GCP_62 skip) and its
# lifecycle is different (logs expire; noncurrent versions go after a day).
resource "google_storage_bucket" "access_logs" {
  #checkov:skip=CKV_GCP_62:This is the access-log sink of the other buckets; logging it into itself would recurse.
  project                     = var.project_id
  name                        = "${var.project_id}-${var.prefix}-access-logs"
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets
  labels                      = local.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = var.access_log_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 1
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# Cloud Storage usage/storage logs are delivered by this Google group. A Domain Restricted Sharing
# org policy rejects the grant: set grant_storage_analytics_writer = false there.
resource "google_storage_bucket_iam_member" "access_logs_writer" {
  count = var.grant_storage_analytics_writer ? 1 : 0

  bucket = google_storage_bucket.access_logs.name
  role   = "roles/storage.objectCreator"
  member = "group:cloud-storage-analytics@google.com"
}

# The data buckets differ only in their lifecycle; everything else below is common to all of them.
# A null age means "no such rule". Rules are emitted in a fixed order (NEARLINE, COLDLINE, Delete
# by age, then the common deletion of noncurrent versions), the order the buckets had before.
locals {
  buckets = {
    # Wheel, function sources, sites.yaml.
    artifacts = {
      nearline_after_days = null
      coldline_after_days = null
      delete_after_days   = null
    }
    # Daily CSV exports.
    csv = {
      nearline_after_days = var.nearline_after_days
      coldline_after_days = null
      delete_after_days   = null
    }
    # Raw frames written by the Cloud Storage subscription (Avro, with attributes).
    raw = {
      nearline_after_days = var.nearline_after_days
      coldline_after_days = var.coldline_after_days
      delete_after_days   = null
    }
    # Poison messages the ingest functions could not decode.
    quarantine = {
      nearline_after_days = var.nearline_after_days
      coldline_after_days = null
      delete_after_days   = var.quarantine_retention_days
    }
  }
}

resource "google_storage_bucket" "this" {
  for_each = local.buckets

  project                     = var.project_id
  name                        = "${var.project_id}-${var.prefix}-${each.key}"
  location                    = local.bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets
  labels                      = local.labels

  versioning {
    enabled = true
  }

  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = "${each.key}/"
  }

  dynamic "lifecycle_rule" {
    for_each = each.value.nearline_after_days == null ? [] : [each.value.nearline_after_days]
    content {
      condition {
        age                   = lifecycle_rule.value
        matches_storage_class = ["STANDARD"]
      }
      action {
        type          = "SetStorageClass"
        storage_class = "NEARLINE"
      }
    }
  }

  dynamic "lifecycle_rule" {
    for_each = each.value.coldline_after_days == null ? [] : [each.value.coldline_after_days]
    content {
      condition {
        age                   = lifecycle_rule.value
        matches_storage_class = ["NEARLINE"]
      }
      action {
        type          = "SetStorageClass"
        storage_class = "COLDLINE"
      }
    }
  }

  dynamic "lifecycle_rule" {
    for_each = each.value.delete_after_days == null ? [] : [each.value.delete_after_days]
    content {
      condition {
        age = lifecycle_rule.value
      }
      action {
        type = "Delete"
      }
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# The buckets were separate resources before; keep their state (and data) across the rename.
moved {
  from = google_storage_bucket.artifacts
  to   = google_storage_bucket.this["artifacts"]
}

moved {
  from = google_storage_bucket.csv
  to   = google_storage_bucket.this["csv"]
}

moved {
  from = google_storage_bucket.raw
  to   = google_storage_bucket.this["raw"]
}

moved {
  from = google_storage_bucket.quarantine
  to   = google_storage_bucket.this["quarantine"]
}

# --- objects uploaded by Terraform --------------------------------------------

# The wheel keeps its file name (pip installs a wheel only under its name-version-tags name);
# the function sources get content-addressed names, so a changed archive redeploys its function.
resource "google_storage_bucket_object" "collector_wheel" {
  bucket = google_storage_bucket.this["artifacts"].name
  name   = "collector/${basename(var.artifacts.wheel)}"
  source = var.artifacts.wheel
}

resource "google_storage_bucket_object" "ingest_source" {
  bucket = google_storage_bucket.this["artifacts"].name
  name   = "functions/ingest-${filemd5(var.artifacts.ingest_zip)}.zip"
  source = var.artifacts.ingest_zip
}

resource "google_storage_bucket_object" "export_source" {
  bucket = google_storage_bucket.this["artifacts"].name
  name   = "functions/export-${filemd5(var.artifacts.export_zip)}.zip"
  source = var.artifacts.export_zip
}

resource "google_storage_bucket_object" "sites" {
  bucket       = google_storage_bucket.this["artifacts"].name
  name         = local.sites_object
  source       = var.sites_config_path
  content_type = "application/yaml"
}

# --- bucket IAM -----------------------------------------------------------------

# Readers of the artifacts bucket: the collector (wheel, sites.yaml), the functions (sites.yaml),
# the database job (wheel, sites.yaml). The builder reads only the function sources (iam.tf).
resource "google_storage_bucket_iam_member" "artifacts_reader" {
  for_each = toset(["collector", "ingest-main", "ingest-replica", "export", "migrate"])

  bucket = google_storage_bucket.this["artifacts"].name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.component[each.key].email}"
}

resource "google_storage_bucket_iam_member" "quarantine_writer" {
  for_each = toset(["ingest-main", "ingest-replica"])

  bucket = google_storage_bucket.this["quarantine"].name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.component[each.key].email}"
}

# objectUser (not objectCreator): a re-run of a day's export overwrites its CSV files.
resource "google_storage_bucket_iam_member" "csv_writer" {
  bucket = google_storage_bucket.this["csv"].name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.component["export"].email}"
}

# The Cloud Storage subscription writes as the Pub/Sub service agent.
resource "google_storage_bucket_iam_member" "raw_pubsub_creator" {
  bucket = google_storage_bucket.this["raw"].name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_project_service_identity.pubsub.email}"
}

resource "google_storage_bucket_iam_member" "raw_pubsub_reader" {
  bucket = google_storage_bucket.this["raw"].name
  role   = "roles/storage.legacyBucketReader"
  member = "serviceAccount:${google_project_service_identity.pubsub.email}"
}
