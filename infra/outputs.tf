output "frames_topic" {
  description = "Full id of the frames topic (ESS_TOPIC of the collector)."
  value       = google_pubsub_topic.frames.id
}

output "dead_letter_subscription" {
  description = "Pull subscription holding dead-lettered frame messages."
  value       = google_pubsub_subscription.dead_letter.id
}

output "dead_letter_replay_command" {
  description = "Run after a sink's outage outlasted its retry budget (docs/deploy.md): sends each dead-lettered message to the replay topic of the sink that failed it."
  value = join(" ", concat(
    ["ess replay-dead-letters --subscription", google_pubsub_subscription.dead_letter.id],
    [for src, topic in local.dead_letter_routes : "--route ${src}=${topic}"],
  ))
}

output "ingest_function_urls" {
  description = "HTTPS endpoints of the ingest functions by sink (push subscription targets)."
  value       = { for k, f in google_cloudfunctions2_function.ingest : k => f.service_config[0].uri }
}

output "export_function_url" {
  description = "HTTPS endpoint of the export function (Cloud Scheduler target)."
  value       = google_cloudfunctions2_function.export.service_config[0].uri
}

output "buckets" {
  description = "Bucket names by role."
  value = {
    artifacts   = google_storage_bucket.this["artifacts"].name
    csv         = google_storage_bucket.this["csv"].name
    raw         = google_storage_bucket.this["raw"].name
    quarantine  = google_storage_bucket.this["quarantine"].name
    access_logs = google_storage_bucket.access_logs.name
  }
}

output "sites_config_uri" {
  description = "gs:// URI of sites.yaml (ESS_SITES_CONFIG of the functions)."
  value       = local.sites_uri
}

output "db_connection_names" {
  description = "Cloud SQL connection names (ESS_DB_INSTANCE) by sink; null for an external DSN sink."
  value       = { for k, s in local.sinks : k => s.instance }
}

output "db_iam_users" {
  description = "Cloud SQL IAM database users (ESS_DB_USER) by component."
  value = {
    ingest_main    = local.main_sql ? google_sql_user.iam["ingest-main"].name : null
    ingest_replica = local.replica_sql ? google_sql_user.iam["ingest-replica"].name : null
    export         = local.main_sql ? google_sql_user.iam["export"].name : null
  }
}

output "db_grants_sql" {
  description = "SQL to run (as the schema owner, after the migrations) on the Cloud SQL databases: ingest users may insert and create a new day's partitions (ess_ensure_day_partitions, which runs as the owner), export may only read (and save data_status), also on tables (partitions) the owner creates later."
  value = templatefile("${path.module}/db_grants.sql.tftpl", {
    databases = concat(
      local.main_sql ? [{
        label   = "main (${var.database.name} on ${google_sql_database_instance.this["main"].name})"
        writers = [google_sql_user.iam["ingest-main"].name]
        readers = [google_sql_user.iam["export"].name]
      }] : [],
      local.replica_sql ? [{
        label   = "replica (${var.database.name} on ${google_sql_database_instance.this["replica"].name})"
        writers = [google_sql_user.iam["ingest-replica"].name]
        readers = []
      }] : [],
    )
  })
}

output "db_setup_commands" {
  description = "First deploy (docs/deploy.md): per Cloud SQL instance, give the migration user cloudsqlsuperuser once, then run the database job (ess db setup); both idempotent."
  value = {
    for k, inst in google_sql_database_instance.this : k => [
      "gcloud sql users assign-roles ${google_sql_user.migrate[k].name} --instance=${inst.name} --type=CLOUD_IAM_SERVICE_ACCOUNT --database-roles=cloudsqlsuperuser --project=${var.project_id}",
      "gcloud run jobs execute ${google_cloud_run_v2_job.db[k].name} --region=${var.region} --project=${var.project_id} --wait",
    ]
  }
}

output "collector_instance" {
  description = "Name and zone of the collector VM (ssh: gcloud compute ssh NAME --zone ZONE --tunnel-through-iap)."
  value       = { name = google_compute_instance.collector.name, zone = google_compute_instance.collector.zone }
}

output "service_accounts" {
  description = "Service account emails by component."
  value       = { for k, sa in google_service_account.component : k => sa.email }
}

output "dashboard_id" {
  description = "Cloud Monitoring dashboard id."
  value       = google_monitoring_dashboard.ess.id
}

output "bigquery_tables" {
  description = "BigQuery external tables over the daily export by type (project.dataset.table); empty without bigquery_dataset."
  value       = { for t, tbl in google_bigquery_table.export : t => "${tbl.project}.${tbl.dataset_id}.${tbl.table_id}" }
}
