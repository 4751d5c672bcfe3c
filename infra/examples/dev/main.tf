# Small, cheap dev deployment: scale-to-zero functions, small shared-core databases without
# deletion protection, buckets that terraform destroy may empty.

locals {
  # `make package` writes these under the repository's build/ folder.
  build = "${path.module}/../../../build"
}

module "ess" {
  source = "../.."

  project_id        = var.project_id
  region            = var.region
  zone              = "${var.region}-a"
  prefix            = "ess-dev"
  sites_config_path = var.sites_config_path

  artifacts = {
    wheel      = var.wheel_path
    ingest_zip = "${local.build}/ingest.zip"
    export_zip = "${local.build}/export.zip"
  }

  collector_machine_type = "e2-micro"
  collector_disk_size_gb = 10

  ingest = {
    min_instances = 0
    max_instances = 3
  }

  export = {
    max_instances = 1
  }

  database = {
    tier                    = "db-g1-small"
    disk_size_gb            = 10
    max_connections         = 50
    deletion_protection     = false
    backup_retained_count   = 3
    pitr_log_retention_days = 1
    replica_zone            = "${var.region}-b"
    external_dsn_secret = {
      main    = var.main_db_external_dsn_secret
      replica = var.replica_db_external_dsn_secret
    }
  }

  force_destroy_buckets = true
  notification_channels = var.notification_channels

  labels = { env = "dev" }
}
