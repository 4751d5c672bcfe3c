resource "google_pubsub_topic" "frames" {
  #checkov:skip=CKV_GCP_83:Messages are raw telemetry registers (no personal data) kept at most 7 days; Google-managed encryption at rest, avoiding a KMS key and its per-operation cost on a 1 Hz stream.
  project                    = var.project_id
  name                       = "${var.prefix}-frames"
  message_retention_duration = var.topic_message_retention
  labels                     = local.labels

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Messages are raw telemetry registers (no personal data) kept at most 7 days; Google-managed encryption at rest, avoiding a KMS key and its per-operation cost on a 1 Hz stream.
  project                    = var.project_id
  name                       = "${var.prefix}-frames-dead-letter"
  message_retention_duration = var.topic_message_retention
  labels                     = local.labels

  depends_on = [google_project_service.apis]
}

# Collector may publish to the frames topic only.
resource "google_pubsub_topic_iam_member" "collector_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.frames.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.component["collector"].email}"
}

# Push subscriptions to the ingest functions, each with an OIDC token: per sink, one on the
# frames topic (key = the sink) and one on its replay topic (key replay-<sink>, replay.tf).
locals {
  push_subscriptions = merge(
    { for k, _ in local.sinks : k => {
      sink = k, name = "${var.prefix}-frames-ingest-${k}", topic = google_pubsub_topic.frames.id
    } },
    { for k, _ in local.sinks : "replay-${k}" => {
      sink = k, name = "${var.prefix}-frames-replay-${k}", topic = google_pubsub_topic.replay[k].id
    } },
  )
}

resource "google_pubsub_subscription" "ingest" {
  for_each = local.push_subscriptions

  project                    = var.project_id
  name                       = each.value.name
  topic                      = each.value.topic
  ack_deadline_seconds       = var.push_ack_deadline_seconds
  message_retention_duration = var.subscription_message_retention
  labels                     = local.labels

  push_config {
    push_endpoint = google_cloudfunctions2_function.ingest[each.value.sink].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.component["invoker"].email
      audience              = google_cloudfunctions2_function.ingest[each.value.sink].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = var.push_min_backoff
    maximum_backoff = var.push_max_backoff
  }

  # A replay into a sink that is still down ends in the same dead-letter topic, from its replay
  # subscription, which `ess replay-dead-letters` routes to the same sink again.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  lifecycle {
    # A push that outlives its ack deadline is redelivered while the first request still runs.
    precondition {
      condition     = var.ingest.timeout_seconds <= var.push_ack_deadline_seconds
      error_message = "ingest.timeout_seconds must not exceed push_ack_deadline_seconds (${var.push_ack_deadline_seconds})."
    }
  }

  # Pushes before the invoker may call the function fail (403) and back off for minutes.
  depends_on = [
    google_service_account_iam_member.pubsub_token_creator,
    google_cloud_run_v2_service_iam_member.ingest_invoker,
  ]
}

locals {
  raw_archive_ack_deadline_seconds = 300
}

# Raw archive: every frame message as Avro (payload bytes + attributes) in the raw bucket.
resource "google_pubsub_subscription" "raw_archive" {
  project                    = var.project_id
  name                       = "${var.prefix}-frames-raw-archive"
  topic                      = google_pubsub_topic.frames.id
  ack_deadline_seconds       = local.raw_archive_ack_deadline_seconds
  message_retention_duration = var.subscription_message_retention
  labels                     = local.labels

  cloud_storage_config {
    bucket                   = google_storage_bucket.this["raw"].name
    filename_prefix          = "frames/"
    filename_suffix          = ".avro"
    filename_datetime_format = "YYYY-MM-DD/hh_mm_ssZ"
    max_duration             = var.raw_archive_max_duration
    max_bytes                = 100000000

    avro_config {
      write_metadata = true
    }
  }

  expiration_policy {
    ttl = ""
  }

  lifecycle {
    # A Cloud Storage subscription must close a file within the ack deadline of its messages.
    precondition {
      condition     = tonumber(trimsuffix(var.raw_archive_max_duration, "s")) <= local.raw_archive_ack_deadline_seconds
      error_message = "raw_archive_max_duration must not exceed the raw-archive subscription's ack deadline (${local.raw_archive_ack_deadline_seconds}s)."
    }
  }

  depends_on = [
    google_storage_bucket_iam_member.raw_pubsub_creator,
    google_storage_bucket_iam_member.raw_pubsub_reader,
  ]
}

# Dead letters are kept in a pull subscription for inspection and replay.
resource "google_pubsub_subscription" "dead_letter" {
  project                    = var.project_id
  name                       = "${var.prefix}-frames-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false
  labels                     = local.labels

  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub service agent: publish to the dead-letter topic, and ack on the source subscriptions.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_project_service_identity.pubsub.email}"
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = local.push_subscriptions

  project      = var.project_id
  subscription = google_pubsub_subscription.ingest[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_project_service_identity.pubsub.email}"
}
