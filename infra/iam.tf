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
