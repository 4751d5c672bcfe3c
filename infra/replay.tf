# Dead-letter replay (issue 21): a sink down for longer than its retry budget (max_delivery_attempts
# deliveries, push_min_backoff..push_max_backoff apart: about 16 h at 100 attempts) dead-letters
# what it could not store. `ess replay-dead-letters` (schemas/ess/replay.py) reads the dead-letter
# subscription after the sink is back and publishes each message to the replay topic of the sink
# whose subscription gave up on it (attribute CloudPubSubDeadLetterSourceSubscription). Each replay
# topic has one push subscription to that sink's ingest function, so the other sink and the raw
# archive never see the message again. A topic per sink, not a filter: a subscription's filter
# cannot change in place (Terraform would replace the subscription and drop its backlog). The
# replay subscriptions are google_pubsub_subscription.ingest["replay-<sink>"] (pubsub.tf).

resource "google_pubsub_topic" "replay" {
  #checkov:skip=CKV_GCP_83:Messages are raw telemetry registers (no personal data) kept at most 7 days; Google-managed encryption at rest, avoiding a KMS key and its per-operation cost.
  for_each = local.sinks

  project                    = var.project_id
  name                       = "${var.prefix}-frames-replay-${each.key}"
  message_retention_duration = var.topic_message_retention
  labels                     = local.labels

  depends_on = [google_project_service.apis]
}

locals {
  # Source subscription (as dead-lettered messages name it) => the replay topic of its sink.
  dead_letter_routes = {
    for k, s in google_pubsub_subscription.ingest :
    s.name => google_pubsub_topic.replay[local.push_subscriptions[k].sink].id
  }
}
