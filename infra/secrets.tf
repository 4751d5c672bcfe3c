# External TimescaleDB DSNs. The secrets are created out of band
#   printf %s "$DSN" | gcloud secrets create ess-main-dsn --data-file=-
# so their values never enter Terraform state; Terraform only looks them up and grants access.

data "google_secret_manager_secret" "main_dsn" {
  count = local.main_sql ? 0 : 1

  project   = var.project_id
  secret_id = var.database.external_dsn_secret.main
}

data "google_secret_manager_secret" "replica_dsn" {
  count = local.replica_sql ? 0 : 1

  project   = var.project_id
  secret_id = var.database.external_dsn_secret.replica
}

# The main sink is read by export as well.
resource "google_secret_manager_secret_iam_member" "main_dsn_accessor" {
  for_each = local.main_sql ? toset([]) : toset(["ingest-main", "export"])

  project   = var.project_id
  secret_id = data.google_secret_manager_secret.main_dsn[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.component[each.key].email}"
}

resource "google_secret_manager_secret_iam_member" "replica_dsn_accessor" {
  for_each = local.replica_sql ? toset([]) : toset(["ingest-replica"])

  project   = var.project_id
  secret_id = data.google_secret_manager_secret.replica_dsn[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.component[each.key].email}"
}
