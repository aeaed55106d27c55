output "queue" {
  description = "projects/P/topics/T/subscriptions/S, for the runtime's MLKIT_QUEUE (pubsub:...)."
  value       = "${google_pubsub_topic.this.id}/subscriptions/${google_pubsub_subscription.this.name}"
}

output "subscription_id" {
  description = "Full name of the pull subscription, whose depth KEDA reads."
  value       = google_pubsub_subscription.this.id
}

output "dead_letter_topic" {
  description = "Full name of the dead-letter topic, for the runtime's MLKIT_DEAD_LETTER (pubsub:...)."
  value       = google_pubsub_topic.dead_letter.id
}
