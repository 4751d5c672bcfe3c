# Shared locals. Resources are split by concern: apis.tf, network.tf, iam.tf, pubsub.tf,
# replay.tf (dead-letter replay), functions.tf, sql.tf, migrate.tf (the database job), storage.tf,
# scheduler.tf, collector_vm.tf, monitoring.tf, alerts_loss.tf, secrets.tf.

locals {
  bucket_location = coalesce(var.bucket_location, var.region)
  replica_region  = coalesce(var.database.replica_region, var.region)

  labels = merge({ app = "ess-pipeline", managed-by = "terraform" }, var.labels)

  # Which sinks are Cloud SQL (count = 1) and which are external TimescaleDB DSNs in Secret Manager.
  main_sql    = var.database.external_dsn_secret.main == null
  replica_sql = var.database.external_dsn_secret.replica == null
  any_sql     = local.main_sql || local.replica_sql

  # One service account per component; keys are used everywhere below.
  service_accounts = {
    collector        = "ESS collector VM: publishes frames"
    "ingest-main"    = "ESS ingest function writing to the main database"
    "ingest-replica" = "ESS ingest function writing to the replica database"
    export           = "ESS daily CSV export function"
    invoker          = "Pub/Sub push identity (OIDC) allowed to invoke the ingest functions"
    scheduler        = "Cloud Scheduler identity (OIDC) allowed to invoke the export function"
    builder          = "Cloud Build identity that builds the function containers"
    migrate          = "ESS database job: the schema owner (migrations, grants, status, redecode)"
  }

  # Project-level roles per service account. Resource-level grants (topic, buckets, secrets,
  # Cloud Run services, Artifact Registry) live next to the resource they apply to.
  # docs/deploy.md keeps the table of intent (tests/infra checks it); no primitive roles, no keys.
  project_roles = {
    collector        = ["roles/logging.logWriter", "roles/monitoring.metricWriter"]
    "ingest-main"    = ["roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/logging.logWriter"]
    "ingest-replica" = ["roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/logging.logWriter"]
    export           = ["roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/logging.logWriter"]
    invoker          = []
    scheduler        = []
    # Build logs only; reading the sources and pushing the image are granted on those resources
    # (iam.tf, functions.tf, storage.tf). No roles/cloudbuild.builds.builder: it may write any
    # bucket of the project (the wheel and sites.yaml the VM installs, the exported data).
    builder = ["roles/logging.logWriter"]
    migrate = ["roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/logging.logWriter"]
  }

  sites_object = "config/sites.yaml"
  sites_uri    = "gs://${google_storage_bucket.this["artifacts"].name}/${local.sites_object}"

  # The two ingest sinks share source and entry point; they differ in SA, database and env.
  sinks = {
    main = {
      sa          = "ingest-main"
      instance    = local.main_sql ? google_sql_database_instance.this["main"].connection_name : null
      dsn_secret  = local.main_sql ? null : data.google_secret_manager_secret.main_dsn[0].secret_id
      db_iam_user = local.main_sql ? google_sql_user.iam["ingest-main"].name : null
    }
    replica = {
      sa          = "ingest-replica"
      instance    = local.replica_sql ? google_sql_database_instance.this["replica"].connection_name : null
      dsn_secret  = local.replica_sql ? null : data.google_secret_manager_secret.replica_dsn[0].secret_id
      db_iam_user = local.replica_sql ? google_sql_user.iam["ingest-replica"].name : null
    }
  }
}
