# The queue of one async API (runtime/asyncq/gcp.py): the front publishes each request's id and payload
# (or where the payload is, for a large one) to the topic, workers pull from the subscription, extend the
# ack deadline while they predict, then ack. Pub/Sub moves a message that was delivered max_attempts times
# without an ack to the dead-letter topic, so a request that kills every worker still ends there.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Pub/Sub's own service agent forwards undeliverable messages: it must be allowed to publish to the
  # dead-letter topic and to ack on the subscription, or dead lettering silently never happens.
  service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  # A subscription keeps unacked messages at most 31 days; a request queued longer than its result is kept
  # is not worth running.
  retention = "${min(var.result_retention_days, 31) * 86400}s"
  results   = "projects/_/buckets/${var.bucket}/objects/${var.results_prefix}/"
}

resource "google_pubsub_topic" "this" {
  #checkov:skip=CKV_GCP_83:Pub/Sub encrypts with Google-managed keys; a CMEK needs a key ring the platform team owns.
  project = var.project_id
  name    = var.name
  labels  = var.labels
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Pub/Sub encrypts with Google-managed keys; a CMEK needs a key ring the platform team owns.
  project = var.project_id
  name    = "${var.name}-dead-letter"
  labels  = var.labels
}

resource "google_pubsub_subscription" "this" {
  project = var.project_id
  name    = var.name
  topic   = google_pubsub_topic.this.id
  labels  = var.labels

  ack_deadline_seconds       = var.ack_deadline_s
  message_retention_duration = local.retention

  # An idle API's subscription must not be deleted after 31 days without pulls (Pub/Sub's default).
  expiration_policy {
    ttl = ""
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_attempts
  }

  # A request that was released or whose worker died comes back after a growing pause, not at once.
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  # Dead lettering works from the first delivery only once the service agent may forward.
  depends_on = [google_pubsub_topic_iam_member.dead_letter_agent]
}

# A topic keeps nothing by itself: the dead-lettered messages stay here, for as long as results are kept.
resource "google_pubsub_subscription" "dead_letter" {
  project = var.project_id
  name    = "${var.name}-dead-letter"
  topic   = google_pubsub_topic.dead_letter.id
  labels  = var.labels

  message_retention_duration = local.retention

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_topic_iam_member" "dead_letter_agent" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.service_agent
}

resource "google_pubsub_subscription_iam_member" "source_agent" {
  project      = var.project_id
  subscription = google_pubsub_subscription.this.name
  role         = "roles/pubsub.subscriber"
  member       = local.service_agent
}

# Two identities per API, each with what its code path calls (runtime/asyncq), and nothing more.
# The front (front.py `_enqueue`, `status`): uploads a large payload and the `queued` record of a new, random
# id (created, never overwritten: the record goes first, before the request is published), publishes the
# request to the topic, and downloads records for GET /predict/{id}. It never pulls, acks or dead-letters.
resource "google_pubsub_topic_iam_member" "front_publish" {
  project = var.project_id
  topic   = google_pubsub_topic.this.name
  role    = "roles/pubsub.publisher"
  member  = var.front_member
}

# Stacks applied when one account served both sides (before the front and workers had accounts of their own)
# hold this binding as api_publish: the same role for the same account, which is now the front's. Moved, not
# deleted and added: a delete of the old address after the add of the new one would remove the binding both
# name, and the front could no longer publish. (The other bindings of that time change their member to the
# workers' account, so they are replaced whatever their address.)
moved {
  from = google_pubsub_topic_iam_member.api_publish
  to   = google_pubsub_topic_iam_member.front_publish
}

# The worker (worker.py): pulls, extends the ack deadline, acks and nacks on the subscription
# (roles/pubsub.subscriber), and publishes a request that failed its last attempt to the dead-letter topic
# itself, with the predictor's error recorded, before Pub/Sub's own policy would. It never publishes to the
# API's topic: nothing is re-enqueued, a failed attempt is nacked for Pub/Sub to deliver again.
resource "google_pubsub_subscription_iam_member" "worker_pull" {
  project      = var.project_id
  subscription = google_pubsub_subscription.this.name
  role         = "roles/pubsub.subscriber"
  member       = var.worker_member
}

resource "google_pubsub_topic_iam_member" "worker_dead_letter" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = var.worker_member
}

# Object names under the results prefix only (IAM Conditions on Cloud Storage need uniform bucket-level
# access, which the model bucket has). The front creates and reads; the workers read payloads and overwrite
# records (`queued`, then `running`, then the result; a redelivered request overwrites its own), so
# objectUser, which can replace an object, not creator.
resource "google_storage_bucket_iam_member" "front_results_create" {
  bucket = var.bucket
  role   = "roles/storage.objectCreator"
  member = var.front_member

  condition {
    title       = "mlkit-async-${var.name}-front-create"
    description = "Objects under the results prefix of ${var.name}"
    expression  = "resource.name.startsWith(\"${local.results}\")"
  }
}

resource "google_storage_bucket_iam_member" "front_results_read" {
  bucket = var.bucket
  role   = "roles/storage.objectViewer"
  member = var.front_member

  condition {
    title       = "mlkit-async-${var.name}-front-read"
    description = "Objects under the results prefix of ${var.name}"
    expression  = "resource.name.startsWith(\"${local.results}\")"
  }
}

resource "google_storage_bucket_iam_member" "worker_results" {
  bucket = var.bucket
  role   = "roles/storage.objectUser"
  member = var.worker_member

  condition {
    title       = "mlkit-async-${var.name}-worker"
    description = "Objects under the results prefix of ${var.name}"
    expression  = "resource.name.startsWith(\"${local.results}\")"
  }
}
