# Dead-letter replay (issue 21): a sink down for longer than its retry budget (max_delivery_attempts
# deliveries, push_min_backoff..push_max_backoff apart: about 16 h at 100 attempts) dead-letters
# what it could not store. `ess replay-dead-letters` (schemas/ess/replay.py) reads the dead-letter
# subscription after the sink is back and publishes each message to the replay topic of the sink
# whose subscription gave up on it (attribute CloudPubSubDeadLetterSourceSubscription). Each replay
# topic has one push subscription to that sink's ingest function, so the other sink and the raw
# archive never see the message again. A topic per sink, not a filter: a subscription's filter
# cannot change in place (Terraform would replace the subscription and drop its backlog).

resource "google_pubsub_topic" "replay" {
  #checkov:skip=CKV_GCP_83:Messages are raw telemetry registers (no personal data) kept at most 7 days; Google-managed encryption at rest, avoiding a KMS key and its per-operation cost.
  for_each = local.sinks

  project                    = var.project_id
  name                       = "${var.prefix}-frames-replay-${each.key}"
  message_retention_duration = var.topic_message_retention
  labels                     = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "replay" {
  for_each = local.sinks

  project                    = var.project_id
  name                       = "${var.prefix}-frames-replay-${each.key}"
  topic                      = google_pubsub_topic.replay[each.key].id
  ack_deadline_seconds       = var.push_ack_deadline_seconds
  message_retention_duration = var.subscription_message_retention
  labels                     = local.labels

  push_config {
    push_endpoint = google_cloudfunctions2_function.ingest[each.key].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.component["invoker"].email
      audience              = google_cloudfunctions2_function.ingest[each.key].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = var.push_min_backoff
    maximum_backoff = var.push_max_backoff
  }

  # A replay into a sink that is still down ends in the same dead-letter topic, from this
  # subscription, which the replay routes to the same sink again.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_service_account_iam_member.pubsub_token_creator,
    google_cloud_run_v2_service_iam_member.ingest_invoker,
  ]
}

# The Pub/Sub service agent acks what it dead-letters from the replay subscriptions.
resource "google_pubsub_subscription_iam_member" "replay_dead_letter_subscriber" {
  for_each = local.sinks

  project      = var.project_id
  subscription = google_pubsub_subscription.replay[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_project_service_identity.pubsub.email}"
}

locals {
  # Source subscription (as dead-lettered messages name it) => the replay topic of its sink.
  dead_letter_routes = merge(
    { for k, s in google_pubsub_subscription.ingest : s.name => google_pubsub_topic.replay[k].id },
    { for k, s in google_pubsub_subscription.replay : s.name => google_pubsub_topic.replay[k].id },
  )
}
