# One service account per component, no keys, no primitive roles.

resource "google_service_account" "component" {
  for_each = local.service_accounts

  project      = var.project_id
  account_id   = "${var.prefix}-${each.key}"
  display_name = "${var.prefix} ${each.key}"
  description  = each.value

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "component" {
  for_each = {
    for pair in flatten([
      for sa, roles in local.project_roles : [for role in roles : { sa = sa, role = role }]
    ]) : "${pair.sa} ${pair.role}" => pair
  }

  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.component[each.value.sa].email}"
}

# The Pub/Sub service agent mints the OIDC tokens of the push subscriptions for the invoker SA.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = google_service_account.component["invoker"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_project_service_identity.pubsub.email}"
}

# --- the builder: what a function build needs, nothing project-wide (issue 21) ----------------

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Cloud Functions copies each function's source archive into this bucket; Cloud Build reads it
  # there (an early build fails with "Access to bucket gcf-v2-sources-... denied").
  function_sources_bucket = "gcf-v2-sources-${data.google_project.this.number}-${var.region}"
}

# Read on the function sources only: the copies in gcf-v2-sources-<number>-<region> (a project
# binding conditioned on that bucket: Cloud Functions creates it on the first deploy) ...
resource "google_project_iam_member" "builder_sources" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = "serviceAccount:${google_service_account.component["builder"].email}"

  condition {
    title       = "function-sources-only"
    description = "Objects of the bucket Cloud Functions copies function sources to."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${local.function_sources_bucket}\")"
  }
}

# ... and the archives this module uploads (functions/ in the artifacts bucket, not the wheel
# or sites.yaml).
resource "google_storage_bucket_iam_member" "builder_sources" {
  bucket = google_storage_bucket.this["artifacts"].name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.component["builder"].email}"

  condition {
    title       = "function-archives-only"
    description = "The function source archives (functions/*.zip)."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.this["artifacts"].name}/objects/functions/\")"
  }
}
