# Small, cheap dev deployment: scale-to-zero functions, small shared-core databases without
# deletion protection, buckets that terraform destroy may empty.

module "ess" {
  source = "../.."

  project_id        = var.project_id
  region            = var.region
  zone              = "${var.region}-a"
  prefix            = "ess-dev"
  sites_config_path = var.sites_config_path

  collector_machine_type = "e2-micro"
  collector_disk_size_gb = 10

  ingest_min_instances = 0
  ingest_max_instances = 3
  export_max_instances = 1

  db_tier                    = "db-g1-small"
  db_disk_size_gb            = 10
  db_max_connections         = 50
  db_deletion_protection     = false
  db_backup_retained_count   = 3
  db_pitr_log_retention_days = 1
  replica_db_zone            = "${var.region}-b"

  main_db_external_dsn_secret    = var.main_db_external_dsn_secret
  replica_db_external_dsn_secret = var.replica_db_external_dsn_secret

  force_destroy_buckets = true
  notification_channels = var.notification_channels

  labels = { env = "dev" }
}
